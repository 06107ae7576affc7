"""cpt_hw.fileio: atomic writes that leave no temporary file and give files their usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from cpt_hw.fileio import write_atomic


def test_write_atomic_reports_changes_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    assert write_atomic(path, "one\n") is True
    assert write_atomic(path, "one\n") is False   # unchanged: not rewritten
    assert write_atomic(path, b"two\n") is True
    assert path.read_text() == "two\n"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_new_files_get_the_umask_mode_and_rewrites_keep_theirs(tmp_path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        write_atomic(new, "x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644       # as open() would create it, not mkstemp's 0600
        script = tmp_path / "run.sh"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        write_atomic(script, "#!/bin/sh\necho hi\n")
        assert stat.S_IMODE(script.stat().st_mode) == 0o755
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    write_atomic(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
