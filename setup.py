"""Packaging hook: an installed (non-editable) tinykd carries copies of the checkout's
firmware/ and boards/ inside the package, as tinykd/_shipped/, where tinykd.resources finds
them when there is no checkout beside the package. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("firmware", "boards")


class BuildPyWithShippedData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        here = Path(__file__).resolve().parent
        for name in SHIPPED:
            target = Path(self.build_lib) / "tinykd" / "_shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(here / name, target, ignore=shutil.ignore_patterns("build", "__pycache__", "*.o"))


setup(cmdclass={"build_py": BuildPyWithShippedData})
