"""Feature extractors the device application can run itself (`device_frontend` of a firmware
project): the host then sends raw input (audio) and the device computes the model's input.

A project built with a frontend gets firmware/frontend/ and `#define <define> 1` in its
tkd_app_config.h; the app compiles its raw-input path only then. Without one (None) the host
sends the model's input bytes, whatever the model's size. The model's input must be exactly
what the frontend produces (size and quantisation): `check_model` says so before compiling.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinykd.errors import TinykdError


@dataclass(frozen=True)
class DeviceFrontend:
    name: str  # the value of device_frontend
    define: str  # the app's switch in tkd_app_config.h
    source_dir: str  # its C sources, under firmware/
    input_bytes: int  # int8 features per inference (the model's input size)
    input_scale: float  # the features' quantisation (the model's input must match)
    input_zero_point: int
    description: str

    def check_model(self, model_name: str, input_bytes: int, input_scale: float, input_zero_point: int) -> None:
        """TinykdError unless the model takes exactly this frontend's features."""
        problems = []
        if input_bytes != self.input_bytes:
            problems.append(f"{input_bytes} input bytes instead of {self.input_bytes}")
        if float(input_scale) != self.input_scale:
            problems.append(f"input scale {input_scale:g} instead of {self.input_scale:g}")
        if int(input_zero_point) != self.input_zero_point:
            problems.append(f"input zero point {input_zero_point} instead of {self.input_zero_point}")
        if problems:
            raise TinykdError(
                f"Model {model_name!r} cannot run behind the device frontend {self.name!r} "
                f"({self.description}): it has {', '.join(problems)}. Convert the model with the "
                f"frontend's input quantisation (scale {self.input_scale:g}, zero point "
                f"{self.input_zero_point}; `tinykd build --task kws` does this), or build the "
                "firmware without device_frontend so the host sends the model's input itself."
            )


# Kept equal to firmware/frontend/tkd_frontend.h (TKD_FRONTEND_NUM_FEATURES, _SCALE,
# _ZERO_POINT) and tinykd/data/kws/frontend.py; tests/test_firmware_frontend.py checks all three.
DEVICE_FRONTENDS: dict[str, DeviceFrontend] = {
    "kws-mfcc": DeviceFrontend(
        name="kws-mfcc",
        define="TKD_APP_FRONTEND_KWS",
        source_dir="frontend",
        input_bytes=49 * 10,
        input_scale=0.5,
        input_zero_point=45,
        description="1 s of 16 kHz int16 audio to 49 x 10 int8 MFCCs",
    ),
}


def get_device_frontend(name: str | None) -> DeviceFrontend | None:
    if name is None:
        return None
    try:
        return DEVICE_FRONTENDS[name]
    except KeyError:
        raise TinykdError(
            f"Unknown device frontend {name!r}. Known: {', '.join(DEVICE_FRONTENDS)}; or None for a "
            "firmware whose host sends the model's input bytes."
        ) from None
