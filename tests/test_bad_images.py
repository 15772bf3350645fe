"""Bad image files, in the cached (small) and streamed (large) paths: a run never crashes, bad files
are skipped, counted and listed once, and a streamed batch keeps its size."""

import io
import json
import logging
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from byol.data.folder import UNREADABLE, list_images, open_rgb
from byol.data.loader import TrainData

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width × height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _exif_rotated_jpeg() -> bytes:
    """40×20 pixels, left half red and right half blue, stored with EXIF orientation 6 (shown turned 90° clockwise)."""
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def bad_folder(root, side: int):
    """Two classes of good ``side``-px images and every kind of awkward file; returns (root, bad names)."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / c / f"good{i}.png")
    a, b = root / "a", root / "b"
    good = (a / "good0.png").read_bytes()
    jpeg = io.BytesIO()
    Image.new("RGB", (side, side), RED).save(jpeg, format="JPEG")
    (a / "zero.jpg").write_bytes(b"")
    (a / "random.jpg").write_bytes(rng.bytes(3000))
    (a / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (a / "truncated.png").write_bytes(good[: len(good) // 2])
    (a / "bomb.png").write_bytes(_bomb_png(30000, 30000))
    os.symlink(a / "loop2.jpg", a / "loop1.jpg")
    os.symlink(a / "loop1.jpg", a / "loop2.jpg")
    os.symlink("..", b / "parent")  # a folder link loop: walked once
    Image.fromarray(np.full((side, side), 40000, dtype=np.uint16)).save(b / "sixteen.png")
    Image.new("CMYK", (side, side), (0, 255, 255, 0)).save(b / "cmyk.jpg", format="JPEG")
    pal = Image.new("P", (side, side), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(0, (0, 0, side // 2, side))
    pal.info["transparency"] = 0
    pal.save(b / "palette.png", transparency=0)
    (b / "rotated.jpg").write_bytes(_exif_rotated_jpeg())
    Image.new("RGB", (1, 1), BLUE).save(b / "one.png")
    Image.new("RGB", (20000, 20), BLUE).save(b / "wide.png")
    bad = {"zero.jpg", "random.jpg", "truncated.jpg", "truncated.png", "bomb.png", "loop1.jpg", "loop2.jpg"}
    return root, bad


def test_awkward_files_decode_as_a_person_would_see_them(tmp_path):
    root, bad = bad_folder(tmp_path / "imgs", 32)
    images = list_images(root)
    assert len(images) == 19 + 18 and len(set(images.paths)) == len(images)  # the link to the root is not walked
    for p in images.paths:
        if p.name in bad:
            with pytest.raises(UNREADABLE):
                open_rgb(p)
    b = root / "b"
    assert np.asarray(open_rgb(b / "sixteen.png"))[0, 0].tolist() == [156, 156, 156]  # 40000 / 256
    assert np.asarray(open_rgb(b / "cmyk.jpg")).mean(axis=(0, 1))[0] > 200  # cyan-free: red
    pal = np.asarray(open_rgb(b / "palette.png"))
    assert pal[0, 0].tolist() == [255, 255, 255] and pal[0, -1].tolist() == [255, 0, 0]  # transparent -> white
    rotated = open_rgb(b / "rotated.jpg")
    assert rotated.size == (20, 40)  # upright: the EXIF orientation was applied
    top, bottom = np.asarray(rotated)[2, 10], np.asarray(rotated)[-3, 10]
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left (red) half is now on top
    assert open_rgb(b / "one.png").size == (1, 1) and open_rgb(b / "wide.png").size == (20000, 20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["PNG", "JPEG", "BMP", "WEBP"]),
    cut=st.floats(0.0, 1.0),
    noise=st.binary(max_size=64),
    at=st.integers(0, 400),
)
@example(kind="PNG", cut=1.0, noise=b"", at=0)
@example(kind="JPEG", cut=1.0, noise=b"", at=0)
@example(kind="BMP", cut=1.0, noise=b"", at=0)
@example(kind="WEBP", cut=1.0, noise=b"", at=0)
def test_any_damage_to_an_image_file_is_skipped_or_decoded_never_a_crash(tmp_path, kind, cut, noise, at):
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), RED).save(buf, format=kind)
    data = bytearray(buf.getvalue()[: max(1, int(len(buf.getvalue()) * cut))])
    data[at : at + len(noise)] = noise
    path = tmp_path / f"x.{kind.lower()}"
    path.write_bytes(bytes(data))
    intact = bytes(data) == buf.getvalue()
    try:
        img = open_rgb(path)
    except UNREADABLE:
        assert not intact, f"an intact {kind} file was rejected"
        return
    assert img.mode == "RGB" and img.width >= 1 and img.height >= 1
    if intact:  # an undamaged file decodes to the image it holds (lossy formats: within a few levels)
        assert img.size == (24, 16) and np.abs(np.asarray(img, dtype=int) - RED).max() <= 8


@pytest.mark.parametrize("side, workers", [(32, 0), (96, 0), (96, 2)], ids=["cached", "streamed", "streamed-workers"])
def test_bad_files_are_skipped_counted_once_and_batches_keep_their_size(tmp_path, caplog, side, workers):
    root, bad = bad_folder(tmp_path / "imgs", side)
    with caplog.at_level(logging.WARNING):
        data = TrainData(str(root), side, 5, cache_dir=tmp_path / "cache", workers=workers)
        assert (data.cached is not None) == (side == 32)
        for epoch in range(2):
            batches = list(data.epoch(epoch))
            assert batches and all(len(b.indices) == 5 for b in batches)  # no batch shrinks
    assert {os.path.basename(p) for p in data.skipped} == bad  # every bad file, counted once
    warned = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warned) == 1 and f"skipped {len(bad)} of" in warned[0], warned  # listed once, not every epoch


def test_a_run_on_a_folder_with_bad_files_finishes_and_lists_them(tmp_path):
    from helpers import tiny_config

    from byol.train.pretrain import pretrain

    root, bad = bad_folder(tmp_path / "imgs", 96)
    cfg = tiny_config(root, tmp_path / "cache", epochs=2, knn_every=1)
    cfg.data.image_size, cfg.optim.batch_size = 64, 8
    result = pretrain(cfg, tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.steps > 0 and summary["skipped_images"] == len(bad)
    assert {os.path.basename(p) for p in summary["skipped_files"]} == bad
    assert torch.isfinite(torch.tensor(summary["final_loss"]))


UNREADABLE_CHILD = """
import json, logging, os, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from byol.data.eval_stream import eval_images
from byol.data.folder import list_images
from byol.data.loader import TrainData
from byol.data.shards import write_shards
root, cache, side, workers, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
data = TrainData(root, side, 5, cache_dir=cache, workers=workers)
sizes = [len(b.indices) for epoch in range(2) for b in data.epoch(epoch)]
kept = [int(i) for _, _, idx in eval_images(list_images(root), side, cache_dir=cache, workers=workers) for i in idx]
info = write_shards(root, shards) if workers == 0 else {}
print(json.dumps({"skipped": sorted(os.path.basename(p) for p in data.skipped), "sizes": sizes,
                  "classes": data.classes, "evaluated": len(kept), "shard_samples": info.get("samples")}))
"""


def _without_root_s_reach(argv: list[str]) -> list[str]:
    """``argv`` run without the power to read what its mode forbids: for root, without the capabilities
    that override file permissions (``setpriv``, util-linux); as anyone else, as it is."""
    import shutil

    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("root reads every file, and setpriv (util-linux) is not here to drop that power")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--", *argv]


@pytest.mark.parametrize("side, workers", [(32, 0), (96, 0), (96, 2)], ids=["cached", "streamed", "streamed-workers"])
def test_files_without_read_permission_are_skipped_counted_and_listed(tmp_path, side, workers):
    """A real EACCES, raised by the kernel: three files of mode 000 and a class folder of mode 000, read by
    a child that cannot override permissions (the tests run as root, who reads everything). Unreadable
    files are skipped and listed once, like undecodable ones; the folder is named in one warning; batches
    keep their size; evaluation and ``byol shard`` skip the same files."""
    import subprocess
    import sys

    root, rng = tmp_path / "imgs", np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    for name in ("a/0.png", "a/1.png", "b/5.png"):
        os.chmod(root / name, 0)
    os.chmod(root / "c", 0)
    argv = [sys.executable, "-c", UNREADABLE_CHILD, str(root), str(tmp_path / "cache"), str(side), str(workers),
            str(tmp_path / "shards")]  # fmt: skip
    try:
        done = subprocess.run(_without_root_s_reach(argv), capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(root / "c", 0o755)  # for pytest's clean-up
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["skipped"] == ["0.png", "1.png", "5.png"] and result["classes"] == ["a", "b"]
    assert result["sizes"] and all(size == 5 for size in result["sizes"])  # no batch shrinks
    assert result["evaluated"] == 21 and result["shard_samples"] == (21 if workers == 0 else None)
    assert f"skipped 1 folders of {root} that could not be read: {root / 'c'} (Permission denied)" in done.stderr
    assert "skipped 3 of 24 images that could not be read" in done.stderr, done.stderr[-2000:]
