"""Hugging Face datasets as image lists (the byol[hf] extra): read with pyarrow, row by row.

``DATA`` may be, besides an image folder:

- a folder of Parquet files (the Hub's layout, ``data/train-00000-of-00004.parquet``...), one
  ``.parquet`` file, or a glob of them (``data/train-*.parquet``);
- a folder written by ``Dataset.save_to_disk`` (``state.json`` beside ``*.arrow`` files); a
  ``DatasetDict``'s folder holds one such folder per split;
- ``hf:NAME`` (with the ``datasets`` package): the dataset as ``datasets.load_dataset(NAME)`` finds
  it in the local cache (``HF_DATASETS_CACHE``), the Hub switched off for the call: a name not cached
  (or a slice such as ``train[:10%]``) is an error, never a download.

Options follow a ``#``, comma-separated (a path that exists with a ``#`` in its name is a path):
``split=NAME`` (Parquet files whose names or folders carry several splits, a ``DatasetDict``
folder, a cached name: ``train`` by default for the last),
``image=COLUMN`` and ``label=COLUMN`` (``label=none``: unlabelled), ``config=NAME`` (``hf:`` only),
e.g. ``hf:cifar10#split=test`` or ``'shards/*.parquet#image=img,label=fine_label'``.

The image column is the one whose Hugging Face feature is ``Image`` (else one named ``image`` or
``img``); the label column the one whose feature is ``ClassLabel`` (its names are the classes), else
an integer column named ``label`` or ``labels``. Images are never loaded whole: a row's image is read
with its Parquet row group (or Arrow record batch, memory-mapped), the last few groups kept per
thread, so reading in order (the image cache's runs of 256 rows a thread, evaluation) reads each group about
once. A row whose image
is missing or does not decode is skipped and counted like an unreadable file, named ``FILE[ROW]``.
"""

from __future__ import annotations

import contextlib
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
# The Hub's shard names, train-00000-of-00004.parquet (older uploads add -<hash>); its Parquet converter
# lays a split out as a folder instead (CONFIG/train/0000.parquet).
_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}(-[0-9a-f]+)?\.parquet$")
_DEPTH = 3  # how deep a folder is searched for Parquet files (the Hub's layouts are at most this deep)
_GROUPS_KEPT = 4  # row groups (record batches) kept decoded per thread


def split_options(spec: str) -> tuple[str, dict[str, str]]:
    """``"PATH#split=test,image=img"`` → ``("PATH", {"split": "test", "image": "img"})``; a ``#`` not
    followed by ``key=value`` pairs is part of the path."""
    base, sep, tail = str(spec).rpartition("#")
    if not sep or not tail or not all(re.fullmatch(r"\w+=[^,=]*", part) for part in tail.split(",")):
        return str(spec), {}
    if Path(spec).expanduser().exists():  # a real path with a '#' in its name
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
        files = sorted(f for d in range(1, _DEPTH + 1) for f in path.glob("/".join(["*"] * d) + ".parquet"))
        if files and _has_images(path):
            raise ByolError(
                f"{path} holds both image files and Parquet files ({files[0].name}...): pass "
                f"'{path}/**/*.parquet' for the dataset, or move the Parquet files out of the image folder"
            )
        return files or None
    return None


def _has_images(folder: Path) -> bool:
    return any(
        p.suffix.lower() in IMAGE_EXTENSIONS for d in range(1, _DEPTH + 1) for p in folder.glob("/".join(["*"] * d))
    )


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
    if "config" in options:
        raise ByolError(f"{spec}: #config= names a configuration of a dataset in the cache (hf:NAME) only")
    if path.is_dir() and (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise ByolError(f"{base} is a DatasetDict of the splits {', '.join(splits)}: pass {base}#split=NAME")
        path = path / split
    elif split is not None and (path / "state.json").exists():
        raise ByolError(f"{spec}: {base} is one split (a Dataset saved to disk); drop #split=")
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
    by_split = _by_split(files)
    if split is not None:
        if split not in by_split:
            raise ByolError(
                f"{base}: no Parquet files of the split {split!r} (its splits: {', '.join(sorted(by_split))})"
            )
        files = by_split[split]
    elif len(by_split) > 1:
        raise ByolError(f"{base} holds the splits {', '.join(sorted(by_split))}: pass {base}#split=NAME")
    root = path if path.is_dir() else Path(os.path.commonpath([str(f.parent) for f in files]))
    return root, files, "parquet", options


def _by_split(files: list[Path]) -> dict[str, list[Path]]:
    """Parquet files by split: the Hub's file names say it (``train-00000-of-00004.parquet``), else the
    folder holding them (``CONFIG/train/0000.parquet``); files of one folder with no split named are one."""
    by_split: dict[str, list[Path]] = {}
    for f in files:
        m = _SPLIT_FILE.match(f.name)
        by_split.setdefault(m["split"] if m else f.parent.name, []).append(f)
    return by_split


def _from_cache(spec: str, name: str, options: dict[str, str]) -> tuple[Path, list[Path], str, dict[str, str]]:
    """A dataset of the local Hugging Face cache, through ``datasets.load_dataset`` with the Hub switched
    off for the call (``HF_HUB_OFFLINE`` as ``datasets`` and ``huggingface_hub`` read it): what the cache
    lacks is an error, never a download."""
    try:
        import datasets
        import huggingface_hub.constants as hub_constants
    except ImportError:
        raise ByolError(f"{spec}: a dataset name needs the datasets package: pip install 'byol[hf]'") from None
    split = options.get("split", "train")
    offline = [(datasets.config, "HF_HUB_OFFLINE"), (hub_constants, "HF_HUB_OFFLINE")]
    before = [getattr(module, key) for module, key in offline]
    try:
        for module, key in offline:
            setattr(module, key, True)
        ds = datasets.load_dataset(name, options.get("config"), split=split)
    except Exception as e:  # noqa: BLE001 — datasets raises many kinds for "not here"
        why = " ".join(str(e).split())[:200]
        raise ByolError(f"{spec}: not in the local Hugging Face cache ({type(e).__name__}: {why})") from None
    finally:
        for (module, key), value in zip(offline, before):
            setattr(module, key, value)
    files = [Path(f["filename"]) for f in ds.cache_files]
    if not files:
        raise ByolError(f"{spec}: the dataset is in memory, not in cache files; save_to_disk it and pass the folder")
    rows = sum(b.num_rows for f in files for b in _pyarrow().ipc.open_stream(_pyarrow().memory_map(str(f))))
    if rows != len(ds):
        raise ByolError(f"{spec}: split {split!r} is part of its files ({len(ds)} of {rows} rows); slices are not read")
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

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open the files anew
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _mine(self) -> threading.local:
        """This thread's open files and decoded groups: nothing is shared between threads, and a forked
        worker, whose pid differs, starts with none of its parent's."""
        mine = self._local
        if getattr(mine, "pid", None) != os.getpid():
            mine.pid, mine.handles, mine.groups = os.getpid(), {}, OrderedDict()
        return mine

    def _open(self, fi: int):
        handles = self._mine().handles
        if fi not in handles:
            pa = _pyarrow()
            f = self.files[fi]
            if self.kind == "parquet":
                handles[fi] = pa.parquet.ParquetFile(f, memory_map=True)
            else:
                handles[fi] = list(pa.ipc.open_stream(pa.memory_map(str(f))))  # zero-copy batches
        return handles[fi]

    def _group_rows(self, f: Path) -> list[int]:
        pa = _pyarrow()
        with _readable(f):
            if self.kind == "parquet":
                meta = pa.parquet.ParquetFile(f).metadata
                return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            return [b.num_rows for b in pa.ipc.open_stream(pa.memory_map(str(f)))]

    def _group(self, g: int):
        """The image column of group ``g`` (a pyarrow array), cached per thread."""
        kept = self._mine().groups
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
            with _readable(f):
                if self.kind == "parquet":
                    values += pa.parquet.read_table(f, columns=[column]).column(0).to_pylist()
                else:
                    values += [
                        v for b in pa.ipc.open_stream(pa.memory_map(str(f))) for v in b.column(column).to_pylist()
                    ]
        return values

    def stamp(self) -> str:
        """What keys the image cache: the files' paths, sizes and times, and the image column."""
        parts = [self.image_column] + [f"{f}\0{f.stat().st_size}\0{f.stat().st_mtime_ns}" for f in self.files]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def _readable(f: Path):
    """A file pyarrow cannot read (truncated, a git-LFS pointer, not Parquet or Arrow) as one line."""
    try:
        yield
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
        kind = "Parquet" if f.suffix == ".parquet" else "Arrow"
        raise ByolError(f"{f}: not a readable {kind} file ({' '.join(str(e).split())[:160]})") from None


def _features(files: list[Path], kind: str) -> tuple[list[str], dict[str, Any]]:
    """Column names and the Hugging Face features (``{}`` when the files carry none)."""
    pa = _pyarrow()
    with _readable(files[0]):
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
        elif known and "label" in options:
            raise ByolError(
                f"{spec}: {len(raw) - len(known)} of {len(raw)} rows have no label in {label!r} (-1 or "
                "empty); pass #label=none to read the dataset unlabelled"
            )
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
