"""Talking to a board: the serial protocol, the link, QEMU, flashing and batch inference.

    from tinykd.device import DeviceLink, QemuInstance, run_inference
    from tinykd.device.flash import flash

Importing this package does not import TensorFlow.
"""

from tinykd.device.link import DeviceLink
from tinykd.device.protocol import DeviceInfo, Result
from tinykd.device.qemu import QemuInstance
from tinykd.device.run import check_model_hash, run_inference, run_inference_qemu

__all__ = [
    "DeviceLink",
    "DeviceInfo",
    "Result",
    "QemuInstance",
    "check_model_hash",
    "run_inference",
    "run_inference_qemu",
]
