"""fileio: atomic writes (all or nothing), JSON reading with clear errors, one list of image extensions."""

from __future__ import annotations

import json

import pytest

from timm_dynmix.fileio import IMAGE_EXTENSIONS, atomic_path, atomic_write_bytes, atomic_write_json, read_json


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_writes(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "a.json", {"x": (1, 2), "p": tmp_path})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2], "p": str(tmp_path)}


def test_read_json_errors(tmp_path):
    class CustomError(ValueError):
        pass

    with pytest.raises(FileNotFoundError, match="no baseline JSON at"):
        read_json(tmp_path / "absent.json", "baseline JSON")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CustomError, match=r"bad.json is not valid JSON: .*line 1"):
        read_json(bad, error=CustomError)
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_json(bad)
    good = tmp_path / "good.json"
    good.write_text('{"a": [1]}', encoding="utf-8")
    assert read_json(good) == {"a": [1]}


def test_one_list_of_image_extensions():
    from timm_dynmix.data import datasets
    from timm_dynmix.robustness import readers

    assert readers.IMAGE_EXTENSIONS is IMAGE_EXTENSIONS and not hasattr(datasets, "_IMAGE_EXTS")
    assert {".jpeg", ".jpg", ".png", ".gif", ".pgm", ".webp"} <= IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)
