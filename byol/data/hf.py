"""Hugging Face datasets as image lists (the byol[hf] extra): read with pyarrow, row by row.

``DATA`` may be, besides an image folder:

- a folder of Parquet files (the Hub's layout, ``data/train-00000-of-00004.parquet``...), one
  ``.parquet`` file, or a glob of them (``data/train-*.parquet``);
- a folder written by ``Dataset.save_to_disk`` (``state.json`` beside ``*.arrow`` files); a
  ``DatasetDict``'s folder holds one such folder per split;
- ``hf:NAME`` (with the ``datasets`` package): the dataset as ``datasets.load_dataset(NAME)`` finds
  it in the local cache. byol never downloads: ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_CACHE`` are
  read by ``datasets`` itself, and a name not cached is an error.

Options follow a ``#``, comma-separated: ``split=NAME`` (a Parquet folder whose file names carry
several splits, a ``DatasetDict`` folder, a cached name: ``train`` by default for the last),
``image=COLUMN`` and ``label=COLUMN`` (``label=none``: unlabelled), ``config=NAME`` (``hf:`` only),
e.g. ``hf:cifar10#split=test`` or ``'shards/*.parquet#image=img,label=fine_label'``.

The image column is the one whose Hugging Face feature is ``Image`` (else one named ``image`` or
``img``); the label column the one whose feature is ``ClassLabel`` (its names are the classes), else
an integer column named ``label`` or ``labels``. Images are never loaded whole: a row's image is read
with its Parquet row group (or Arrow record batch, memory-mapped), the last few groups kept per
thread, so reading in order (the image cache, evaluation) reads each group once. A row whose image
is missing or does not decode is skipped and counted like an unreadable file, named ``FILE[ROW]``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from byol.constants import IMAGE_EXTENSIONS
from byol.errors import ByolError

log = logging.getLogger(__name__)

HF_PREFIX = "hf:"
OPTIONS = ("split", "image", "label", "config")
_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}\.parquet$")  # the Hub's shard names
_GROUPS_KEPT = 4  # row groups (record batches) kept decoded per thread


def split_options(spec: str) -> tuple[str, dict[str, str]]:
    """``"PATH#split=test,image=img"`` → ``("PATH", {"split": "test", "image": "img"})``; a ``#`` not
    followed by ``key=value`` pairs is part of the path."""
    base, sep, tail = str(spec).rpartition("#")
    if not sep or not tail or not all(re.fullmatch(r"\w+=[^,=]*", part) for part in tail.split(",")):
        return str(spec), {}
    options = dict(part.split("=", 1) for part in tail.split(","))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ByolError(f"{spec}: unknown option {unknown[0]!r} after '#' (options: {', '.join(OPTIONS)})")
    return base, options


def _parquet_files(base: str) -> list[Path] | None:
    """The Parquet files ``base`` names (a file, a glob, or a folder holding only Parquet data), or None."""
    if base.endswith(".parquet") and any(c in base for c in "*?["):
        return [Path(p) for p in sorted(glob.glob(base, recursive=True))]
    path = Path(base).expanduser()
    if path.is_file() and path.suffix == ".parquet":
        return [path]
    if path.is_dir() and not (path / "state.json").exists() and not (path / "dataset_dict.json").exists():
        files = sorted(path.rglob("*.parquet"))
        if files and not _has_images(path):
            return files
    return None


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.rglob("*"))


def is_hf(spec: str) -> bool:
    """Whether ``DATA`` names a Hugging Face dataset (Parquet, ``save_to_disk``, ``hf:NAME``)."""
    base, _ = split_options(spec)
    if base.startswith(HF_PREFIX):
        return True
    path = Path(base).expanduser()
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        return True
    return _parquet_files(base) is not None


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ByolError("Hugging Face datasets need pyarrow: pip install 'byol[hf]'") from None
    return pyarrow


def resolve(spec: str) -> tuple[Path, list[Path], str, dict[str, str]]:
    """``(root, files, kind, options)``: the files of one split, ``kind`` "parquet" or "arrow"."""
    base, options = split_options(spec)
    if base.startswith(HF_PREFIX):
        return _from_cache(spec, base[len(HF_PREFIX) :], options)
    path = Path(base).expanduser()
    split = options.get("split")
    if path.is_dir() and (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise ByolError(f"{base} is a DatasetDict of the splits {', '.join(splits)}: pass {base}#split=NAME")
        path = path / split
    if path.is_dir() and (path / "state.json").exists():
        state = json.loads((path / "state.json").read_text())
        files = [path / f["filename"] for f in state.get("_data_files", [])]
        missing = [f for f in files if not f.is_file()]
        if not files or missing:
            what = f"a missing file, {missing[0]}" if missing else "no data files"
            raise ByolError(f"{path}: its state.json names {what}")
        return path, files, "arrow", options
    files = _parquet_files(base)
    if not files:
        raise ByolError(f"{base}: no Parquet files")
    by_split: dict[str, list[Path]] = {}
    for f in files:
        m = _SPLIT_FILE.match(f.name)
        by_split.setdefault(m["split"] if m else "", []).append(f)
    if split is not None:
        if split not in by_split:
            raise ByolError(f"{base}: no Parquet files of the split {split!r} (named SPLIT-00000-of-0000N.parquet)")
        files = by_split[split]
    elif len(by_split) > 1:
        named = ", ".join(s for s in sorted(by_split) if s)
        raise ByolError(f"{base} holds the splits {named} (by file name): pass {base}#split=NAME")
    root = path if path.is_dir() else Path(os.path.commonpath([str(f.parent) for f in files]))
    return root, files, "parquet", options


def _from_cache(spec: str, name: str, options: dict[str, str]) -> tuple[Path, list[Path], str, dict[str, str]]:
    """A dataset of the local Hugging Face cache, through ``datasets.load_dataset`` (never downloading
    what the cache lacks when ``HF_HUB_OFFLINE=1``; without it ``datasets`` may try the Hub first)."""
    try:
        import datasets
    except ImportError:
        raise ByolError(f"{spec}: a dataset name needs the datasets package: pip install 'byol[hf]'") from None
    split = options.get("split", "train")
    try:
        ds = datasets.load_dataset(name, options.get("config"), split=split)
    except Exception as e:  # noqa: BLE001 — datasets raises many kinds for "not here"
        why = " ".join(str(e).split())[:200]
        raise ByolError(f"{spec}: not in the local Hugging Face cache ({type(e).__name__}: {why})") from None
    files = [Path(f["filename"]) for f in ds.cache_files]
    if not files:
        raise ByolError(f"{spec}: the dataset is in memory, not in cache files; save_to_disk it and pass the folder")
    return files[0].parent, files, "arrow", options


class Rows:
    """The rows of one split: their images by global row number, read a row group at a time."""

    def __init__(self, files: list[Path], kind: str, image_column: str, label_column: str | None):
        self.files, self.kind = files, kind
        self.image_column, self.label_column = image_column, label_column
        counts = [self._group_rows(f) for f in files]
        self.groups = [(fi, gi) for fi, c in enumerate(counts) for gi in range(len(c))]
        sizes = [n for c in counts for n in c]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._local = threading.local()
        self._pid = os.getpid()
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the files
        state = dict(self.__dict__)
        del state["_local"]
        state["_handles"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local, self._pid = threading.local(), os.getpid()

    def _kept(self) -> OrderedDict:
        """This thread's decoded groups (a forked worker starts with its own handles and none)."""
        if self._pid != os.getpid():
            self._handles, self._pid, self._local = {}, os.getpid(), threading.local()
        kept = getattr(self._local, "groups", None)
        if kept is None:
            kept = self._local.groups = OrderedDict()
        return kept

    def _open(self, fi: int):
        if fi not in self._handles:
            pa = _pyarrow()
            f = self.files[fi]
            if self.kind == "parquet":
                self._handles[fi] = pa.parquet.ParquetFile(f, memory_map=True)
            else:
                self._handles[fi] = list(pa.ipc.open_stream(pa.memory_map(str(f))))  # zero-copy batches
        return self._handles[fi]

    def _group_rows(self, f: Path) -> list[int]:
        pa = _pyarrow()
        if self.kind == "parquet":
            meta = pa.parquet.ParquetFile(f).metadata
            return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        return [b.num_rows for b in pa.ipc.open_stream(pa.memory_map(str(f)))]

    def _group(self, g: int):
        """The image column of group ``g`` (a pyarrow array), cached per thread."""
        kept = self._kept()
        if g in kept:
            kept.move_to_end(g)
            return kept[g]
        fi, gi = self.groups[g]
        handle = self._open(fi)
        if self.kind == "parquet":
            column = handle.read_row_group(gi, columns=[self.image_column]).column(0).combine_chunks()
        else:
            column = handle[gi].column(self.image_column)
        kept[g] = column
        if len(kept) > _GROUPS_KEPT:
            kept.popitem(last=False)
        return column

    def image_bytes(self, row: int) -> bytes:
        """The encoded image of ``row``; ``ValueError`` when the row has none."""
        g = int(np.searchsorted(self.starts, row, side="right")) - 1
        value = self._group(g)[row - int(self.starts[g])].as_py()
        if isinstance(value, dict):  # the Image feature: {"bytes": ..., "path": ...}
            data, where = value.get("bytes"), value.get("path")
            if data is None and where and Path(where).is_file():
                return Path(where).read_bytes()
            value = data
        elif isinstance(value, str) and Path(value).is_file():
            return Path(value).read_bytes()
        if not isinstance(value, bytes) or not value:
            raise ValueError(f"row {row} has no image")
        return value

    def read_column(self, column: str) -> list[Any]:
        """A whole (small) column, in row order: the labels."""
        pa = _pyarrow()
        values: list[Any] = []
        for f in self.files:
            if self.kind == "parquet":
                values += pa.parquet.read_table(f, columns=[column]).column(0).to_pylist()
            else:
                values += [v for b in pa.ipc.open_stream(pa.memory_map(str(f))) for v in b.column(column).to_pylist()]
        return values

    def stamp(self) -> str:
        """What keys the image cache: the files' paths, sizes and times, and the image column."""
        parts = [self.image_column] + [f"{f}\0{f.stat().st_size}\0{f.stat().st_mtime_ns}" for f in self.files]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _features(files: list[Path], kind: str) -> tuple[list[str], dict[str, Any]]:
    """Column names and the Hugging Face features (``{}`` when the files carry none)."""
    pa = _pyarrow()
    if kind == "parquet":
        schema = pa.parquet.read_schema(files[0])
    else:
        with pa.memory_map(str(files[0])) as source:
            schema = pa.ipc.open_stream(source).schema
    raw = (schema.metadata or {}).get(b"huggingface")
    features = json.loads(raw).get("info", {}).get("features", {}) if raw else {}
    return list(schema.names), features


def _pick(spec: str, columns: list[str], features: dict[str, Any], options: dict[str, str]) -> tuple[str, str | None]:
    """The image and label columns: named in the options, else by feature type, else by name."""

    def named(option: str) -> str:
        col = options[option]
        if col not in columns:
            raise ByolError(f"{spec}: no column {col!r} for #{option}= (columns: {', '.join(columns)})")
        return col

    def typed(kind: str) -> str | None:
        return next((c for c in columns if (features.get(c) or {}).get("_type") == kind), None)

    if "image" in options:
        image = named("image")
    else:
        image = typed("Image") or next((c for c in ("image", "img") if c in columns), None)
        if image is None:
            raise ByolError(f"{spec}: no image column found (columns: {', '.join(columns)}); pass #image=COLUMN")
    if options.get("label", "").lower() == "none":
        return image, None
    if "label" in options:
        return image, named("label")
    return image, typed("ClassLabel") or next((c for c in ("label", "labels") if c in columns), None)


def list_rows(spec: str) -> tuple[Path, list[Path], list[int] | None, list[str], Rows]:
    """A Hugging Face dataset's rows (see the module's doc): ``(root, names, labels, classes, rows)``,
    what ``byol.data.folder.list_images`` makes an ``ImageList`` of."""
    root, files, kind, options = resolve(spec)
    columns, features = _features(files, kind)
    image, label = _pick(spec, columns, features, options)
    rows = Rows(files, kind, image, label)
    if len(rows) == 0:
        raise ByolError(f"{spec}: no rows")
    per_file = [0] * len(files)
    for g, (fi, _) in enumerate(rows.groups):
        per_file[fi] += int(rows.starts[g + 1] - rows.starts[g])
    names = [root / f"{_shown(f, root)}[{i}]" for f, n in zip(files, per_file) for i in range(n)]
    labels, classes = None, []
    if label is not None:
        raw = rows.read_column(label)
        if not all(isinstance(y, (int, np.integer)) or y is None for y in raw):
            raise ByolError(f"{spec}: the label column {label!r} is not integer class ids (#label=COLUMN, #label=none)")
        known = [y for y in raw if y is not None and y >= 0]
        if known and len(known) == len(raw):
            names_of = (features.get(label) or {}).get("names")
            classes = list(names_of) if names_of else [str(i) for i in range(max(known) + 1)]
            labels = [int(y) for y in raw]
        elif known:
            unlabelled = len(raw) - len(known)
            log.warning("%s: %d of %d rows have no label; the dataset is read unlabelled", spec, unlabelled, len(raw))
    return root, names, labels, classes, rows


def _shown(f: Path, root: Path) -> str:
    return str(f.relative_to(root)) if f.is_relative_to(root) else f.name


_ROW_NAME = re.compile(r"^(?P<file>.+\.(?:parquet|arrow))\[(?P<row>\d+)\]$")


def row_bytes(name: str | Path) -> bytes:
    """The encoded image a row's name (``FILE[ROW]``, as embeddings and skip lists name rows) points
    to, its columns found as ``list_rows`` finds them without options; ``ValueError`` for another name."""
    m = _ROW_NAME.match(str(name))
    if m is None or not Path(m["file"]).is_file():
        raise ValueError(f"{name} names no row of a Parquet or Arrow file")
    f = Path(m["file"])
    kind = "parquet" if f.suffix == ".parquet" else "arrow"
    columns, features = _features([f], kind)
    image, _ = _pick(str(f), columns, features, {})
    return Rows([f], kind, image, None).image_bytes(int(m["row"]))
