"""The build report: report.json for machines, report.md for people, plots/*.png to look at."""

from .report import HINTON_MNIST_ERRORS, write_report

__all__ = ["HINTON_MNIST_ERRORS", "write_report"]
