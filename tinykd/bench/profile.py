"""Per-layer instruction counts of a generated model on QEMU (the benchmark's profile).

The model's firmware project is generated as usual, then its application is replaced by a
small harness: the input is compiled into the image (copied into the model's arena before each
run, as the app receives it there), `tkd_model_invoke` gets a counter read
(tkd_port_counter_read, SysTick under `-icount shift=0`) before every layer call and at its
end, and the marks and output bytes are printed through Arm semihosting (SYS_WRITE0) before
the program exits. The inputs are compiled in, no serial link: fast for large inputs. The
cost of one mark (measured in the same run, two marks back to back) is subtracted from every
layer and from the totals. The outputs are returned so the caller compares them with TFLite
Micro."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HARNESS_C = r"""/* tinykd bench harness: one inference, a counter mark before every layer, semihosting out. */
#include <stddef.h>
#include <stdint.h>

#include "bench_input.h"
#include "model.h"
#include "tkd_app.h"
#include "tkd_port.h"

#define MARKS_MAX 256
static uint32_t marks[MARKS_MAX];
static uint32_t n_marks;

void tkd_bench_mark(void);
void tkd_bench_mark(void)
{
    if (n_marks < MARKS_MAX) {
        marks[n_marks++] = tkd_port_counter_read();
    }
}

static void sh_write0(const char *s)
{
    register uint32_t r0 __asm("r0") = 0x04u;
    register const char *r1 __asm("r1") = s;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

static void put_hex(uint32_t v, int digits, char *buf)
{
    int i;
    for (i = digits - 1; i >= 0; i--, v >>= 4) {
        buf[i] = "0123456789abcdef"[v & 15u];
    }
}

static void print_run(void)
{
    const int8_t *out_buf = tkd_model_output();
    char line[80];
    uint32_t i;
    for (i = 0; i < n_marks; i++) {
        line[0] = 'M';
        line[1] = ' ';
        put_hex(marks[i], 8, line + 2);
        line[10] = '\n';
        line[11] = 0;
        sh_write0(line);
    }
    for (i = 0; i < TKD_MODEL_OUTPUT_BYTES; i += 32) {
        uint32_t j, n = TKD_MODEL_OUTPUT_BYTES - i < 32 ? TKD_MODEL_OUTPUT_BYTES - i : 32;
        line[0] = 'O';
        line[1] = ' ';
        for (j = 0; j < n; j++) {
            put_hex((uint8_t)out_buf[i + j], 2, line + 2 + 2 * j);
        }
        line[2 + 2 * n] = '\n';
        line[3 + 2 * n] = 0;
        sh_write0(line);
    }
    sh_write0("E\n");
}

void tkd_app_run(void)
{
    uint32_t k;
    int rc = 0;
    tkd_port_init();
    tkd_port_counter_start();
    for (k = 0; k < TKD_BENCH_INPUTS; k++) {
        const int8_t *in = tkd_bench_input[k];
        int8_t *x = tkd_model_input();
        uint32_t i;
        for (i = 0; i < TKD_MODEL_INPUT_BYTES; i++) { /* the input lives in the arena (model.h) */
            x[i] = in[i];
        }
        n_marks = 0;
        tkd_bench_mark();
        tkd_bench_mark(); /* marks[1] - marks[0]: the cost of one mark */
        rc |= tkd_model_invoke(NULL, NULL);
        print_run();
    }
    tkd_port_exit(rc);
}
"""


@dataclass
class LayerProfile:
    index: int
    summary: str
    kind: str  # op name, with "1x1" / "3x3" / ... for convolutions
    macs: int
    instructions: int


def _layer_macs(summary: str) -> tuple[str, int]:
    """(kind, MACs) of a layer from the summary line model.c lists."""
    shapes = [tuple(int(v) for v in s.split(",")) for s in re.findall(r"\[([\d, ]+)\]", summary)]
    op = summary.split()[0]
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kh, kw = (int(v) for v in re.search(r" (\d+)x(\d+) ", summary).groups())
        out = int(np.prod(shapes[-1]))
        in_c = shapes[0][-1] if op == "CONV_2D" else 1
        kind = f"{'conv' if op == 'CONV_2D' else 'depthwise'} {kh}x{kw}"
        if op == "CONV_2D" and kh * kw * in_c > 128:
            kind += " (K > 128)"
        return kind, out * kh * kw * in_c
    if op == "FULLY_CONNECTED":
        k, n = (int(v) for v in re.search(r"(\d+) -> (\d+)", summary).groups())
        b = re.search(r" x(\d+)", summary)
        pt = "per-tensor" if "per-tensor" in summary else "per-channel"
        return f"fully connected, {pt}", k * n * (int(b.group(1)) if b else 1)
    return op.lower(), 0


def instrument_model_c(model_c: Path) -> list[int]:
    """Insert a tkd_bench_mark() before every layer call of tkd_model_invoke and before its
    return; returns the indices of the layers called, in order."""
    text = model_c.read_text()
    head, body = text.split("int tkd_model_invoke(const int8_t *input, int8_t *output)\n{\n", 1)
    lines = body.split("\n")
    out, called = [], []
    for ln in lines:
        m = re.match(r"    (?:if \()?layer_(\d+)_", ln)
        if m:
            out.append("    tkd_bench_mark();")
            called.append(int(m.group(1)))
        elif ln == "    return 0;":
            out.append("    tkd_bench_mark();")
        out.append(ln)
    model_c.write_text(
        head
        + "void tkd_bench_mark(void);\n\n"
        + "int tkd_model_invoke(const int8_t *input, int8_t *output)\n{\n"
        + "\n".join(out)
    )
    return called


def profile_layers(tflite: Path, x: np.ndarray, out: Path, board: str = "mps2-an386", dsp: bool = True):
    """Build the harness for `tflite` with inputs x (int8, [N, input bytes]), run it on QEMU.
    Returns (outputs [N, output bytes], [LayerProfile] of the first input, instructions per
    inference without the marks [N], ModelSources)."""
    from ..boards import load_board
    from ..device.qemu import qemu_command
    from ..firmware.codegen import generate_model_sources
    from ..firmware.project import build_project, generate_project

    out = Path(out)
    brd = load_board(board)
    src = generate_model_sources(tflite, out / "model")
    proj = generate_project(brd, out / "model", out)
    app = out / "app"
    for f in app.glob("*.c"):
        f.unlink()
    (app / "tkd_bench_harness.c").write_text(HARNESS_C)
    x = np.asarray(x, np.int8).reshape(len(x), -1)
    rows = ",\n".join("    { " + ", ".join(str(int(v)) for v in row) + " }" for row in x)
    (app / "bench_input.h").write_text(
        f"#include <stdint.h>\n#define TKD_BENCH_INPUTS {len(x)}\n"
        f"static const int8_t tkd_bench_input[{len(x)}][{x.shape[1]}] = {{\n{rows}\n}};\n"
    )
    called = instrument_model_c(out / "model" / "model.c")
    n_layers = len(called)
    if not dsp:
        mk = (out / "Makefile").read_text()
        (out / "Makefile").write_text(mk.replace("$(EXTRA_CFLAGS)", "$(EXTRA_CFLAGS) -DTKD_USE_DSP=0"))
    res = build_project(proj)
    cmd = qemu_command(brd, res.elf, 0)
    cmd = cmd[: cmd.index("-serial")] + ["-serial", "null"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, start_new_session=True)
    if r.returncode != 0:
        raise RuntimeError(f"profile harness exited with {r.returncode}: {r.stderr[-500:]}")
    text = r.stdout + r.stderr  # semihosting writes to stderr (QEMU 7.2)
    runs = text.split("\nE\n")[: len(x)]
    if len(runs) != len(x):
        raise RuntimeError(f"profile harness printed {len(runs)} runs for {len(x)} inputs")
    ys, totals, marks = [], [], []
    for run in runs:
        mk = [int(v, 16) for v in re.findall(r"^M ([0-9a-f]{8})$", run, re.M)]
        if len(mk) != n_layers + 3:
            raise RuntimeError(f"profile harness printed {len(mk)} marks for {n_layers} layers")
        ys.append(np.frombuffer(bytes.fromhex("".join(re.findall(r"^O ([0-9a-f]+)$", run, re.M))), np.int8))
        cost = mk[1] - mk[0]
        totals.append(mk[-1] - mk[1] - (n_layers + 1) * cost)
        marks = marks or mk
    mark_cost = marks[1] - marks[0]
    listing = (out / "model" / "model.c").read_text().split("Layers:", 1)[1].split("*/", 1)[0]
    summaries = {int(i): s for i, s in re.findall(r"^ \*\s+(\d+) (\S.*)$", listing, re.M)}
    layers = []
    for k, idx in enumerate(called):
        kind, macs = _layer_macs(summaries[idx])
        layers.append(LayerProfile(idx, summaries[idx], kind, macs, marks[k + 3] - marks[k + 2] - mark_cost))
    return np.stack(ys), layers, np.array(totals, np.int64), src
