"""Atomic writes: all or nothing, and an unwritable place is a message, not a traceback."""

import pytest

from tinykd.errors import TinykdError
from tinykd.fileio import atomic_path, write_text


def test_write_is_all_or_nothing(tmp_path):
    target = tmp_path / "a" / "b.txt"
    write_text(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]  # no temporary left behind


@pytest.mark.parametrize("where", ["/proc/tinykd-test/x.json", "/proc/version/x.json"])
def test_unwritable_folder_is_a_clear_error(where):
    with pytest.raises(TinykdError, match=r"Cannot write .*--out DIR"):
        write_text(where, "x")
