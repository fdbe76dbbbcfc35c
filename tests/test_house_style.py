"""House rules live in files (pyproject's [tool.ruff], .clang-format) and the suite enforces them:
a lint error or an unformatted file fails CI like any other test."""

import fnmatch
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def _c_sources() -> list[str]:
    listed = _run("git", "ls-files", "*.c", "*.h", "*.cpp", "*.ino").stdout.split()
    ignored = [
        line.strip()
        for line in (REPO / ".clang-format-ignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [f for f in listed if not any(fnmatch.fnmatch(f, pattern) for pattern in ignored)]


def test_ruff_lint_is_clean():
    run = _run(sys.executable, "-m", "ruff", "check", "--output-format", "concise", ".")
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format_is_clean():
    run = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert run.returncode == 0, "run `ruff format .`:\n" + run.stdout + run.stderr


def test_c_sources_are_clang_formatted():
    files = _c_sources()
    assert len(files) > 15  # the runtime, the app, the ports and the frontend
    run = _run("clang-format", "--dry-run", "-Werror", *files)
    assert run.returncode == 0, "run `clang-format -i` on these:\n" + run.stderr[-4000:]
