import json
import os

import pytest
import torch

from landscape.io import atomic_write, json_safe, write_json, write_text


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "out.json"
    write_json(p, {"a": 1})

    def explode(fh):
        fh.write(b'{"a": 2, "half')
        raise RuntimeError("crash in the middle of a write")

    with pytest.raises(RuntimeError):
        atomic_write(p, explode)
    assert json.loads(p.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_json_safe_values(tmp_path):
    obj = {"t": torch.tensor([1.0, float("nan")]), "inf": float("-inf"), "tup": (1, 2), 3: None}
    assert json_safe(obj) == {"t": [1.0, "nan"], "inf": "-inf", "tup": [1, 2], "3": None}
    write_json(tmp_path / "x.json", obj)
    json.loads((tmp_path / "x.json").read_text())  # strict JSON


def test_unwritable_paths_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        write_text(tmp_path, "x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot be written"):
        write_text(blocker / "sub" / "out.txt", "x")


def test_new_files_get_the_usual_permissions_and_replacements_keep_theirs(tmp_path):
    mask = os.umask(0o022)
    try:
        p = write_text(tmp_path / "new.txt", "x")
        assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
        os.chmod(p, 0o640)
        write_text(p, "y")
        assert p.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)
