"""Run many inferences on a device, keep every verified result, and resume after a stop.

One streaming loop serves every kind of run: a `Job` says what one inference sends (int8
inputs with INFER, or raw KWS clips with INFER_AUDIO: the device computes the features and
returns them with its output) and what comes back; `stream_job` runs it over one or more
links: K QEMU instances side by side (the modelled UART moves only ~10-40 KB/s, so one
instance is the bottleneck; workers take the next input from a shared queue), or one serial
port (a board, or an emulator someone else started). Results are kept per input index in a
`PartialResults` file (written atomically every ~2 s, and on every stop): Ctrl-C stops all
workers and ends the QEMU instances within ~1 s, and the next run with the same inputs,
model and firmware streams only what is missing.

`run_inference(link, x)`, `run_inference_qemu(board, elf, x, instances=K)`, `run_audio` and
`run_audio_qemu` are the short forms for one link or QEMU instances, without a partial file.

`jobs` says what one inference sends and returns, `partial` keeps the results, `links` opens
the links (QEMU or a port), `stream` runs the loop, `short_forms` are the one-call forms.
"""

from tinykd.device.run.jobs import Job, audio_job, check_audio_support, check_model_hash, features_job
from tinykd.device.run.links import LinkStats, PortLinks, QemuLinks
from tinykd.device.run.partial import PartialResults, file_digest, inputs_digest
from tinykd.device.run.short_forms import run_audio, run_audio_qemu, run_inference, run_inference_qemu
from tinykd.device.run.stream import SAVE_EVERY, STOP_WITHIN, DeviceRunInterrupted, Streamed, stream_job

__all__ = [
    "SAVE_EVERY",
    "STOP_WITHIN",
    "DeviceRunInterrupted",
    "Job",
    "LinkStats",
    "PartialResults",
    "PortLinks",
    "QemuLinks",
    "Streamed",
    "audio_job",
    "check_audio_support",
    "check_model_hash",
    "features_job",
    "file_digest",
    "inputs_digest",
    "run_audio",
    "run_audio_qemu",
    "run_inference",
    "run_inference_qemu",
    "stream_job",
]
