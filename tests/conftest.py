"""Shared fixtures: the real MNIST copy in ../shared/data and one quick build reused by many tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    # CI places ../shared beside the checkout; without it the data tests cannot mean anything.
    assert (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file(), (
        f"MNIST test data missing at {SHARED_MNIST}: the tests need ../shared/data/mnist beside the repo"
    )
    return SHARED_MNIST


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's ~/.cache/tinykd from tests."""
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TINYKD_DATA", raising=False)


@pytest.fixture(scope="session")
def quick_build(tmp_path_factory, mnist_dir):
    """One `--quick` MNIST build (all stages) shared by the end-to-end tests."""
    from tinykd.config import resolve
    from tinykd.pipeline import Build

    os.environ.setdefault("TINYKD_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    config = resolve(task="mnist", quick=True, overrides={"data": {"dir": str(mnist_dir)}})
    build = Build(config, tmp_path_factory.mktemp("quick-build"), log=lambda m: None)
    build.run_all()
    return build
