"""The one write path: a file is written whole or not at all."""

import errno
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


class _FillsAfter:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written: a full disk without a mount."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        if self.room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def test_torch_save_into_a_full_file_is_one_line_without_a_mount(tmp_path):
    """The chain torch.save's zip writer makes (ENOSPC inside, a RuntimeError on the way out), made
    wherever the tests run, mount or not."""
    import torch

    from byol.files import WriteFailed

    target = tmp_path / "step-000000012.pt"
    target.write_bytes(b"the checkpoint before")
    full = r"step-000000012.pt: No space left on device; [\d,.]+ MiB free in"
    with pytest.raises(WriteFailed, match=full), atomic_write(target) as f:
        torch.save({"w": torch.randn(100_000)}, _FillsAfter(f, 50_000))
    assert target.read_bytes() == b"the checkpoint before" and os.listdir(tmp_path) == [target.name]


def test_errors_that_are_not_the_file_system_s_keep_their_own_traceback(tmp_path):
    """Only the file system's failures become WriteFailed: not a RuntimeError on a roomy disk, nor a bug
    raised while an unrelated OSError was handled, nor a one-line ByolError raised from None there."""
    from byol.errors import ByolError
    from byol.files import WriteFailed

    def key_error_while_handling_a_missing_file():
        try:
            (tmp_path / "absent").read_text()
        except FileNotFoundError:
            return {}["missing"]

    def option_error_from_none():
        try:
            (tmp_path / "absent").read_text()
        except OSError:
            raise ByolError("--foo must be positive") from None

    def runtime_error():
        raise RuntimeError("a bug in what is written")

    for fail, kind in ((key_error_while_handling_a_missing_file, KeyError), (option_error_from_none, ByolError),
                       (runtime_error, RuntimeError)):  # fmt: skip
        with pytest.raises(kind) as raised, atomic_write(tmp_path / "x.json", "w") as f:
            f.write("{")
            fail()
        assert not isinstance(raised.value, WriteFailed), raised.value
    assert os.listdir(tmp_path) == []


def test_byol_shard_on_a_full_disk_is_one_line_and_leaves_no_half_set(small_disk, synthetic):
    from byol.data.shards import write_shards
    from byol.files import WriteFailed

    small_disk.fill(leave=100_000)
    with pytest.raises(WriteFailed, match=r"cannot write .*shard-00000\d.tar: No space left on device"):
        write_shards(str(synthetic["train"]), small_disk.path / "shards", shard_size=50)
    assert small_disk.files() == ["shards"]  # the folder, and not one shard of a set that is not whole


def test_a_run_on_a_disk_without_room_for_its_first_file_is_one_line(small, small_disk, capsys):
    """Nothing fits: the lock file, config.yaml or TensorBoard's first events, whichever comes first."""
    from byol.cli.__main__ import main as cli

    small_disk.fill(leave=0)
    out = small_disk.path / "run"
    args = ["pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--epochs", "1", "--batch-size",
            "32", "--cache-dir", str(small["cache"]), "--workers", "0", "--no-progress"]  # fmt: skip
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot write {out}" in err and "No space left on device" in err and "MiB free in" in err, err
