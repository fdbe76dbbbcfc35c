"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network", section 3: the
MNIST figures we compare with (test errors of 10 000), for the build report and `tinykd
reproduce hinton-mnist`."""

from __future__ import annotations

#: Test errors of 10 000, by experiment.
PAPER_ERRORS = {"teacher": 67, "baseline-800": 146, "kd-800": 74, "omit3": 206, "omit3-bias-paper": 109}
#: Errors on the test 3s of the experiments that omit the 3s from the transfer set.
PAPER_THREE_ERRORS = {"omit3": 133, "omit3-bias-paper": 14}
#: The rise of the 3's bias the paper chose (on the test set) for omit3-bias-paper.
PAPER_BIAS = 3.5

#: The lines the build report quotes for an MNIST build on the full test set.
HINTON_MNIST_ERRORS = {
    "teacher 1200-1200 (dropout, jitter)": PAPER_ERRORS["teacher"],
    "800-800 baseline (no regularisation)": PAPER_ERRORS["baseline-800"],
    "800-800 distilled (T=20)": PAPER_ERRORS["kd-800"],
}
