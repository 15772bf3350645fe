"""The one write path: a file is written whole or not at all."""

import os

import pytest

from byol.files import atomic_write


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "a.json"
    with atomic_write(target, "w") as f:
        f.write("first")
    with atomic_write(target) as f:
        f.write(b"second")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["a.json"]


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half of a new")
        raise RuntimeError("disk gone")
    assert target.read_text() == "good" and os.listdir(tmp_path) == ["ckpt.pt"]


def test_a_writer_that_needs_a_file_name_gets_the_temporary_path(tmp_path):
    target = tmp_path / "model.onnx"
    with atomic_write(target, mode=None) as tmp:
        assert tmp.parent == tmp_path and tmp != target and not target.exists()
        tmp.write_bytes(b"onnx")
    assert target.read_bytes() == b"onnx" and os.listdir(tmp_path) == ["model.onnx"]
