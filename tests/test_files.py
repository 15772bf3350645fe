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


# A real full disk (a tmpfs, conftest.small_disk): every writer's own exception, whatever it is, ends as
# one WriteFailed line naming the file and the free space; the file before stays whole, no temporary is left.
def _writers():
    import numpy as np
    import torch

    from byol.cli.embed import _write_parquet
    from byol.eval.embeddings import Embeddings
    from byol.train.checkpoint import atomic_save
    from byol.train.metrics_file import MetricsWriter

    def embeddings(n):
        return Embeddings(torch.randn(n, 64), [f"{i}.jpg" for i in range(n)], None, [], {"encoder": {}})

    def state(n):
        return {"w": torch.randn(n)}

    meta = {"backbone": "convnet"}
    return {  # name: (file, write of about `n` floats there)
        "checkpoint": ("step-000000012.pt", lambda path, n: atomic_save({"model": state(n), "step": 12}, path)),
        "encoder.safetensors": ("encoder.safetensors", lambda path, n: _write_weights(state(n), meta, path)),
        "encoder.pt": ("encoder.pt", lambda path, n: _write_weights(state(n), meta, path)),
        "summary": ("summary.json", lambda path, n: _write_text(path, "0" * 4 * n)),
        "metrics": (
            "metrics.jsonl",
            lambda path, n: MetricsWriter(path.parent, tensorboard=False).log(n, {"x": "0" * 4 * n}),
        ),
        "embeddings.npy": ("emb.npy", lambda path, n: embeddings(n // 64).write(path)),
        "embeddings.parquet": ("emb.parquet", lambda path, n: _write_parquet(embeddings(n // 64), path)),
        "cache array": ("cache.npy", lambda path, n: _np_save(path, np.zeros(4 * n, np.uint8))),
    }


def _write_weights(state, meta, path):
    from byol.encoder_io import write_weights

    write_weights(state, meta, path)


def _write_text(path, text):
    with atomic_write(path, "w") as f:
        f.write(text)


def _np_save(path, array):
    import numpy as np

    with atomic_write(path) as f:
        np.save(f, array)


@pytest.mark.parametrize("name", list(_writers()))
def test_a_real_full_disk_fails_every_writer_in_one_line_and_keeps_the_file_before(name, small_disk):
    from byol.files import WriteFailed

    file, write = _writers()[name]
    path = small_disk.path / file
    write(path, 1000)  # the file before: whole
    before = {f: (small_disk.path / f).read_bytes() for f in small_disk.files()}
    small_disk.fill(leave=200_000)
    with pytest.raises(WriteFailed) as failed:
        write(path, 500_000)  # 2 MB: the disk fills mid-write
    message = str(failed.value)
    assert message.startswith(f"cannot write {path}: No space left on device") and "\n" not in message
    assert f"MiB free in {small_disk.path}" in message
    assert failed.value.__suppress_context__  # no second traceback behind it
    assert {f: (small_disk.path / f).read_bytes() for f in small_disk.files()} == before  # nothing else written


def test_a_serializer_error_on_a_roomy_disk_is_not_taken_for_a_full_one(small_disk):
    """A bug in what is written keeps its own exception: only the file system's failures become WriteFailed."""
    import torch

    from byol.train.checkpoint import atomic_save

    with pytest.raises(Exception) as failed:
        atomic_save({"bad": lambda: 0}, small_disk.path / "a.pt")  # a lambda cannot be pickled
    assert type(failed.value).__name__ != "WriteFailed" and small_disk.files() == []
    assert torch  # imported for atomic_save's sake
