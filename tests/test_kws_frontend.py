"""The fixed-point KWS frontend (firmware/frontend): host binding, arithmetic, device build."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _frontend_bench import frontend_cost

from tinykd.data.kws import frontend as fe
from tinykd.data.kws import synth
from tinykd.errors import TinykdError

FRONTEND_DIR = Path(__file__).resolve().parents[1] / "firmware" / "frontend"
RATE = 16000
T = np.arange(RATE) / RATE


def tone(freq: float, amp: float = 8000.0) -> np.ndarray:
    return np.round(amp * np.sin(2 * np.pi * freq * T)).astype(np.int16)


def extreme_clips() -> np.ndarray:
    """Inputs at the edges of the int16 range: where an overflow would show."""
    rng = np.random.default_rng(7)
    step = np.full(RATE, 32767, np.int16)
    step[::640] = -32768
    half = np.where((np.arange(RATE) % 640) < 320, 32767, -32768).astype(np.int16)
    alt = np.where(np.arange(RATE) % 2 == 0, 32767, -32768).astype(np.int16)
    square_1k = np.where(np.sin(2 * np.pi * 1000 * T) >= 0, 32767, -32768).astype(np.int16)
    return np.stack(
        [
            np.full(RATE, 32767, np.int16),
            np.full(RATE, -32768, np.int16),
            step,
            half,
            alt,
            square_1k,
            rng.integers(-32768, 32768, RATE).astype(np.int16),
            np.zeros(RATE, np.int16),
        ]
    )


def espeak_clip(word: str, index: int, peak_db: float | None = None) -> np.ndarray:
    assert shutil.which("espeak-ng"), "espeak-ng is required for this test (apt-get install espeak-ng)"
    spec = synth.clip_spec(11, word, index)
    if peak_db is not None:
        spec = synth.ClipSpec(**{**spec.__dict__, "peak_db": peak_db, "snr_db": 45.0})
    return synth.speak(spec)


def test_generated_tables_are_fresh():
    spec = importlib.util.spec_from_file_location("gen_tables", FRONTEND_DIR / "gen_tables.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (FRONTEND_DIR / "tkd_frontend_tables.h").read_text() == gen.generate(), (
        "tkd_frontend_tables.h is stale: run python firmware/frontend/gen_tables.py"
    )


def test_shape_dtype_determinism_and_batching():
    rng = np.random.default_rng(0)
    audio = np.concatenate([rng.normal(0, 1500, (5, RATE)).astype(np.int16), extreme_clips()])
    a = fe.features(audio)
    assert a.shape == (len(audio), 49, 10) and a.dtype == np.int8
    assert np.array_equal(a, fe.features(audio, threads=1, batch=1))
    assert np.array_equal(a, fe.features(audio, threads=2, batch=3))
    assert np.array_equal(a[2], fe.features(audio[2])[0])
    # Different inputs give different features; the clamp is not everything.
    assert not np.array_equal(a[0], a[1])
    assert len(np.unique(a)) > 50


def test_streaming_and_frame_api_match_whole_clip():
    rng = np.random.default_rng(3)
    clip = np.cumsum(rng.normal(0, 200, RATE)).clip(-30000, 30000).astype(np.int16)
    whole = fe.features(clip)[0]
    assert np.array_equal(fe.stream_features(clip), whole)
    for f in (0, 17, 48):
        assert np.array_equal(fe.frame_features(clip[f * 320 : f * 320 + 640]), whole[f])


def test_bad_input_raises_tinykd_error():
    with pytest.raises(TinykdError, match="16000"):
        fe.features(np.zeros((2, 15999), np.int16))
    with pytest.raises(TinykdError, match="int16"):
        fe.features(np.zeros((1, RATE), np.float32) + 0.5)
    with pytest.raises(TinykdError, match="int16"):
        fe.features(np.full((1, RATE), 40000, np.int32))


def _mel_band_of(freq: float) -> int:
    """Index of the mel band whose centre is nearest to freq (same scale as the frontend)."""
    edges = np.linspace(fe._hz_to_mel(20.0), fe._hz_to_mel(4000.0), 42)
    return int(np.argmin(np.abs(edges[1:-1] - fe._hz_to_mel(freq))))


def test_pure_tone_lands_in_its_mel_band():
    freqs = [150.0, 300.0, 700.0, 1000.0, 1800.0, 2500.0, 3500.0]
    q = fe.features(np.stack([tone(f) for f in freqs]))
    # Invert the 10-coefficient DCT: a smoothed log-mel spectrum over the 40 bands.
    n = np.arange(40)
    basis = np.cos(np.pi * np.arange(10)[:, None] * (n + 0.5) / 40) * np.sqrt(2 / 40)
    basis[0] /= np.sqrt(2)
    c1 = []
    for f, feats in zip(freqs, q):
        mfcc = fe.dequantize(feats[5:44]).mean(axis=0)
        smooth = mfcc @ basis
        peak = int(np.argmax(smooth))
        assert abs(peak - _mel_band_of(f)) <= 2, (f, peak, _mel_band_of(f))
        c1.append(mfcc[1])
    # c1 weighs low bands positively and high bands negatively: it falls as the tone rises.
    assert c1[0] > 20 and c1[-1] < -10
    assert all(b < a + 1.0 for a, b in zip(c1, c1[1:])), c1
    # +20 dB on a tone in noise: every band gains ln(100), so c0 (overall log energy) rises by
    # ln(100) * sqrt(40) and the spectral shape (c1..c9) stays.
    noisy = tone(1000.0, 800.0) + np.random.default_rng(2).normal(0, 50, RATE)
    soft, loud = fe.features(np.stack([np.round(noisy), np.round(10 * noisy)]).astype(np.int16))
    d0 = (fe.dequantize(loud[5:44, 0]) - fe.dequantize(soft[5:44, 0])).mean()
    assert abs(d0 - np.log(100) * np.sqrt(40)) < 1.5
    assert np.abs(loud[5:44, 1:].astype(int) - soft[5:44, 1:]).max() <= 2


def test_silence_noise_and_speech_differ():
    speech = espeak_clip("yes", 0, peak_db=-6.0)
    silence = np.zeros(RATE, np.int16)
    hiss = np.random.default_rng(1).normal(0, 30, RATE).astype(np.int16)
    s, z, h = fe.features(np.stack([speech, silence, hiss]))
    # Digital silence is the floor: c0 saturates low, the spectral shape is flat (zero point).
    assert (z[:, 0] == -128).all() and (z[:, 1:] == fe.ZERO_POINT).all()
    # Speech frames carry far more energy than the hiss and far more spectral shape.
    frame_energy = fe.dequantize(s[:, 0])
    assert frame_energy.max() - fe.dequantize(h[:, 0]).max() > 30
    assert np.abs(fe.dequantize(s[:, 1:])).max() > 3 * np.abs(fe.dequantize(h[:, 1:])).max()
    # The word is localised in time: loud frames are a minority of the second.
    assert 2 <= np.sum(frame_energy > frame_energy.max() - 15) < 40


def test_fixed_point_tracks_float_reference():
    rng = np.random.default_rng(5)
    chirp = np.round(6000 * np.sin(2 * np.pi * (100 * T + 1900 * T**2))).astype(np.int16)
    clips = [
        tone(440.0),
        chirp,
        rng.normal(0, 300, RATE).astype(np.int16),
        rng.normal(0, 3, RATE).astype(np.int16),
        espeak_clip("left", 1),
        espeak_clip("stop", 2),
        espeak_clip("marvin", 3, peak_db=-25.0),
    ]
    audio = np.stack(clips)
    q = fe.features(audio)
    ref = fe.float_reference(audio)
    ref_q = fe.float_reference(audio, quantize=True)
    for i in range(len(audio)):
        corr = np.corrcoef(fe.dequantize(q[i]).ravel(), ref[i].ravel())[0, 1]
        assert corr > 0.99, (i, corr)
    diff = np.abs(q.astype(int) - ref_q)
    assert diff.max() <= 1, np.argwhere(diff > 1)[:5]
    assert np.mean(diff == 0) > 0.95


def _compile(cc: list[str], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cc, "-c", str(FRONTEND_DIR / "tkd_frontend.c"), "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cortex_m4_build_is_warning_free_and_self_contained(tmp_path):
    gcc = shutil.which("arm-none-eabi-gcc")
    assert gcc, "arm-none-eabi-gcc is required for this test (apt-get install gcc-arm-none-eabi)"
    flags = ["-mthumb", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
    m4 = _compile([gcc, "-mcpu=cortex-m4", *flags], tmp_path / "m4.o")
    assert m4.returncode == 0 and not m4.stderr.strip(), m4.stderr
    # On a core without FPU, any float arithmetic would pull in __aeabi_f*/__aeabi_d* helpers.
    m0 = _compile([gcc, "-mcpu=cortex-m0plus", *flags, "-pedantic"], tmp_path / "m0.o")
    assert m0.returncode == 0 and not m0.stderr.strip(), m0.stderr
    lean = _compile([gcc, "-mcpu=cortex-m4", *flags, "-DTKD_FRONTEND_STATIC_SCRATCH=0"], tmp_path / "lean.o")
    assert lean.returncode == 0 and not lean.stderr.strip(), lean.stderr
    size = (
        subprocess.run(
            [shutil.which("arm-none-eabi-size") or "arm-none-eabi-size", str(tmp_path / "lean.o")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        .stdout.splitlines()[-1]
        .split()
    )
    text, data, bss = (int(v) for v in size[:3])
    assert text < 12000 and data == 0 and bss == 0, size  # all tables const, no hidden RAM
    for obj in ("m4.o", "m0.o"):
        nm = subprocess.run(
            [shutil.which("arm-none-eabi-nm") or "arm-none-eabi-nm", "-u", str(tmp_path / obj)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        floaty = {s for s in undefined if s.startswith(("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d"))}
        assert not floaty, floaty
        assert undefined <= {
            "memcpy",
            "memset",
            "memmove",
            "__aeabi_memcpy",
            "__aeabi_memset",
            "__aeabi_memclr",
            "__aeabi_memmove",
            "__aeabi_memclr4",
            "__aeabi_memcpy4",
            "__aeabi_lasr",
            "__aeabi_llsl",
            "__aeabi_llsr",
            "__aeabi_lmul",
            "__aeabi_uldivmod",
            "__aeabi_idiv",
            "__aeabi_idivmod",
            "__aeabi_uidiv",
            "__aeabi_uidivmod",
        }, undefined


HARNESS = r"""
#include <stdio.h>
#include "tkd_frontend.h"
int main(int argc, char **argv) {
    static int16_t audio[TKD_FRONTEND_CLIP_SAMPLES];
    static int8_t feats[TKD_FRONTEND_NUM_FEATURES];
    tkd_frontend_scratch scratch;
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    (void)argc;
    if (!in || !out) return 2;
    while (fread(audio, sizeof(audio), 1, in) == 1) {
        tkd_frontend_run(audio, feats, &scratch);
        fwrite(feats, sizeof(feats), 1, out);
    }
    fclose(in); fclose(out);
    return 0;
}
"""


def test_no_undefined_behaviour_at_extremes_and_same_bytes_at_O0(tmp_path):
    """Built -O0 with UBSan (signed overflow, shifts, bounds) the C must run clean on
    full-scale inputs, and give the bytes the -O2 host library gives."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a host C compiler is required"
    (tmp_path / "main.c").write_text(HARNESS)
    exe = tmp_path / "harness"
    r = subprocess.run(
        [
            cc,
            "-O0",
            "-g",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsanitize=undefined",
            "-fno-sanitize-recover=all",
            "-I",
            str(FRONTEND_DIR),
            str(tmp_path / "main.c"),
            str(FRONTEND_DIR / "tkd_frontend.c"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    audio = np.concatenate([extreme_clips(), np.stack([tone(3000.0, 32767.0)])])
    audio.astype("<i2").tofile(tmp_path / "in.bin")
    run = subprocess.run(
        [str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and "runtime error" not in run.stderr, run.stderr
    got = np.fromfile(tmp_path / "out.bin", dtype=np.int8).reshape(len(audio), 49, 10)
    assert np.array_equal(got, fe.features(audio))
    # Full-scale input does not wrap around anywhere: still within 1 step of the float maths.
    assert np.abs(got.astype(int) - fe.float_reference(audio, quantize=True)).max() <= 1
    assert fe.dequantize(got[3, 5:44, 0]).mean() > 25  # full-scale 25 Hz square wave: loud


# Bare metal on QEMU's MPS2/MPS3 boards: the frontend bench's memory map and start-up code.
QEMU_LINK = FRONTEND_DIR / "bench" / "link.ld"
QEMU_STARTUP = r"""
extern uint32_t _etext, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void reset_handler(void) {
    uint32_t *s = &_etext, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss; d++) *d = 0;
    main();
    for (;;) {}
}
__attribute__((section(".vectors"), used)) static const void *vectors[2] = {&_estack, (void *)reset_handler};
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
"""

QEMU_MAIN = (
    r"""
#include <stdint.h>
#include "tkd_frontend.h"
#include "audio.h"
"""
    + QEMU_STARTUP
    + r"""
static tkd_frontend_scratch scratch;
static int8_t feats[TKD_FRONTEND_NUM_FEATURES];
static char line[2 * TKD_FRONTEND_NUM_FEATURES + 2];
int main(void) {
    static const char hex[] = "0123456789abcdef";
    static const uint32_t exit_args[2] = {0x20026, 0};
    uint32_t c, i;
    for (c = 0; c < N_CLIPS; c++) {
        tkd_frontend_run(test_audio[c], feats, &scratch);
        for (i = 0; i < TKD_FRONTEND_NUM_FEATURES; i++) {
            line[2 * i] = hex[(uint8_t)feats[i] >> 4];
            line[2 * i + 1] = hex[(uint8_t)feats[i] & 15];
        }
        line[2 * i] = '\n';
        line[2 * i + 1] = 0;
        semihost(0x04, line); /* SYS_WRITE0 */
    }
    semihost(0x20, exit_args); /* SYS_EXIT_EXTENDED, status 0 */
    return 0;
}
"""
)


def test_cortex_m4_under_qemu_gives_the_host_bytes(tmp_path):
    """The same C, built for Cortex-M4 and run on QEMU's mps2-an386, writes the very bytes
    the host library computes (speech, full-scale extremes, a tone)."""
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    assert gcc and qemu, "arm-none-eabi-gcc and qemu-system-arm are required for this test"
    audio = np.stack([espeak_clip("go", 4), extreme_clips()[3], extreme_clips()[6], tone(1234.0, 20000.0)])
    bench = frontend_cost()
    bench.write_audio(audio, tmp_path / "audio.h", "test_audio")
    (tmp_path / "main.c").write_text(QEMU_MAIN)
    elf = tmp_path / "fe.elf"
    bench.build(tmp_path / "main.c", tmp_path, elf, link_ld=QEMU_LINK)  # Cortex-M4, -O2, as the firmware
    output = bench.run_qemu(elf, icount=False, timeout=120)
    lines = [word for word in output.split() if len(word) == 2 * 490]
    assert len(lines) == len(audio), output[-1000:]
    device = np.array([np.frombuffer(bytes.fromhex(line), dtype=np.int8) for line in lines]).reshape(-1, 49, 10)
    assert np.array_equal(device, fe.features(audio))


STAGE_MAIN = (
    r"""
#include <stdint.h>
#include "tkd_frontend.h"
#include "audio.h"
static tkd_frontend_scratch scratch;
static int8_t feats[TKD_FRONTEND_NUM_FEATURES];
static uint32_t hash_fft, hash_power;
static uint32_t fold(uint32_t h, const uint32_t *w, uint32_t n) {
    uint32_t i;
    for (i = 0; i < n; i++) h = (h ^ w[i]) * 16777619u;
    return h;
}
/* -DTKD_FRONTEND_PROFILE: called as each stage of a frame ends; hash what the FFT and the
 * split + power stages left in the scratch, every frame */
void tkd_frontend_profile_mark(int stage);
void tkd_frontend_profile_mark(int stage) {
    if (stage == 1) hash_fft = fold(hash_fft, (const uint32_t *)scratch.fft, 1024);
    if (stage == 2) hash_power = fold(hash_power, (const uint32_t *)scratch.power, 512);
}
#ifdef __arm__
"""
    + QEMU_STARTUP
    + r"""
static void put(const char *s) { semihost(0x04, s); }
static void finish(void) { static const uint32_t a[2] = {0x20026, 0}; semihost(0x20, a); }
#else
#include <stdio.h>
static void put(const char *s) { fputs(s, stdout); }
static void finish(void) {}
#endif
static char line[32 + 2 * TKD_FRONTEND_NUM_FEATURES];
static char *hex32(char *p, uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    int k;
    for (k = 28; k >= 0; k -= 4) *p++ = hex[(v >> k) & 15u];
    *p++ = ' ';
    return p;
}
int main(void) {
    static const char hex[] = "0123456789abcdef";
    uint32_t c, i;
    for (c = 0; c < N_CLIPS; c++) {
        char *p = line;
        hash_fft = hash_power = 2166136261u;
        /* odd clips start at an odd sample: unaligned 16-bit audio */
        tkd_frontend_run(test_audio[c] + (c & 1u), feats, &scratch);
        p = hex32(p, hash_fft);
        p = hex32(p, hash_power);
        for (i = 0; i < TKD_FRONTEND_NUM_FEATURES; i++) {
            *p++ = hex[(uint8_t)feats[i] >> 4];
            *p++ = hex[(uint8_t)feats[i] & 15u];
        }
        *p++ = '\n';
        *p = 0;
        put(line);
    }
    finish();
    return 0;
}
"""
)


@pytest.mark.parametrize(
    "machine, cpu, flash, ram, size",
    [
        ("mps2-an385", "cortex-m3", 0x00000000, 0x20000000, "4M"),  # portable C
        ("mps2-an386", "cortex-m4", 0x00000000, 0x20000000, "4M"),  # DSP assembly from here on
        ("mps2-an500", "cortex-m7", 0x00000000, 0x20000000, "4M"),
        ("mps2-an505", "cortex-m33", 0x10000000, 0x38000000, "4M"),
        ("mps3-an547", "cortex-m55", 0x10000000, 0x30000000, "512K"),
    ],
)
def test_every_stage_gives_the_host_integers_on_m3_m4_m7_m33_m55(machine, cpu, flash, ram, size, tmp_path):
    """The FFT buffer and the power spectrum of every frame (hashed) and the feature bytes are
    the host's on each core: portable C on M3, the DSP assembly on M4/M7/M33/M55 (aligned and
    unaligned audio, speech, a tone, full-scale extremes)."""
    gcc, qemu, cc = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm"), shutil.which("cc")
    assert gcc and qemu and cc, "arm-none-eabi-gcc, qemu-system-arm and a host cc are required for this test"
    ext = extreme_clips()
    audio = np.stack([espeak_clip("yes", 2), ext[3], ext[6], tone(1234.0, 20000.0), ext[0], ext[5]])
    padded = np.concatenate([audio, np.zeros((len(audio), 1), np.int16)], axis=1)  # room for the odd offset
    odd = np.stack([np.roll(clip, i & 1) for i, clip in enumerate(padded)])  # odd clips are read from sample 1
    bench = frontend_cost()
    bench.write_audio(odd, tmp_path / "audio.h", "test_audio")
    (tmp_path / "main.c").write_text(STAGE_MAIN)
    (tmp_path / "link.ld").write_text(
        QEMU_LINK.read_text()
        .replace("ORIGIN = 0x00000000", f"ORIGIN = {flash:#010x}")
        .replace("ORIGIN = 0x20000000", f"ORIGIN = {ram:#010x}")
        .replace("LENGTH = 4M", f"LENGTH = {size}")
    )
    common = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-DTKD_FRONTEND_PROFILE", "-I", str(FRONTEND_DIR)]
    srcs = ["-I", str(tmp_path), str(tmp_path / "main.c"), str(FRONTEND_DIR / "tkd_frontend.c")]
    host = subprocess.run(
        [cc, *common, *srcs, "-o", str(tmp_path / "host")], capture_output=True, text=True, timeout=120
    )
    assert host.returncode == 0, host.stderr
    want = subprocess.run([str(tmp_path / "host")], capture_output=True, text=True, timeout=120).stdout.split()
    elf = tmp_path / "fe.elf"
    bench.build(tmp_path / "main.c", tmp_path, elf, (f"-mcpu={cpu}", "-mthumb", *common), tmp_path / "link.ld")
    output = bench.run_qemu(elf, machine, icount=False, timeout=300)
    got = output.split()
    assert len(want) == 3 * len(audio), want[:3]
    assert got == want
    feats = np.array([np.frombuffer(bytes.fromhex(w), np.int8) for w in want[2::3]]).reshape(-1, 49, 10)
    np.testing.assert_array_equal(feats, fe.features(audio))
