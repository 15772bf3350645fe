"""Pictures of an embedding: each query beside its nearest images, as one self-contained HTML page (the
thumbnails inline) and as a PNG grid for documents; near-duplicate pairs the same way and as CSV."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from byol.data.folder import open_rgb
from byol.data.hf import row_bytes
from byol.files import atomic_write

THUMB = 96  # thumbnail side in pixels (small images are enlarged to it, nearest-neighbour)


@dataclass
class Row:
    """One line of a gallery: a query image and the images found for it, with their similarity."""

    query: str
    found: list[tuple[str, float]]
    query_label: str | None = None
    found_labels: list[str | None] | None = None


def thumbnail(path: str, side: int = THUMB) -> Image.Image:
    """The image at ``path`` (a file, or a dataset's row: ``byol.data.hf.row_bytes``) fitted in ``side`` ×
    ``side`` (a grey square when it does not read)."""
    try:
        img = open_rgb(Path(path) if Path(path).is_file() else io.BytesIO(row_bytes(path)))
    except Exception:  # listed once by the embedding; here only a placeholder
        return Image.new("RGB", (side, side), (128, 128, 128))
    scale = side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.NEAREST if scale > 1 else Image.BICUBIC)


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cell(path: str, caption: str, label: str | None, match: bool | None) -> str:
    border = {True: "#2e7d32", False: "#c62828", None: "#bbb"}[match]
    tip = html.escape(path)
    return (
        f'<figure style="border-color:{border}"><img src="{_data_uri(thumbnail(path))}" title="{tip}" alt="{tip}">'
        f"<figcaption>{html.escape(caption)}{'<br>' + html.escape(label) if label else ''}</figcaption></figure>"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}p{max-width:60em}"
    ".row{display:flex;align-items:flex-start;gap:6px;margin:0 0 10px}"
    "figure{margin:0;border:3px solid;border-radius:4px;padding:2px;text-align:center;width:" + str(THUMB + 6) + "px}"
    "figure img{width:" + str(THUMB) + "px;height:" + str(THUMB) + "px;object-fit:contain;image-rendering:pixelated}"
    "figcaption{font-size:11px;line-height:1.25;overflow-wrap:anywhere}.query{margin-right:14px}"
)


def write_gallery(rows: Sequence[Row], out: Path, title: str, note: str) -> None:
    """One self-contained HTML page: a line per row, its query first, then what was found with the
    cosine similarity (and the class, bordered green where it is the query's, red where not)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"]
    parts += [f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"]
    for row in rows:
        labels = row.found_labels or [None] * len(row.found)
        cells = [_cell(row.query, "query", row.query_label, None).replace("<figure", '<figure class="query"', 1)]
        for (path, sim), label in zip(row.found, labels):
            match = None if row.query_label is None or label is None else label == row.query_label
            cells.append(_cell(path, f"{sim:.3f}", label, match))
        parts.append(f'<div class="row">{"".join(cells)}</div>')
    with atomic_write(out, "w") as f:
        f.write("\n".join(parts) + "\n")


def write_grid(rows: Sequence[Row], out: Path, side: int = 64) -> None:
    """The gallery as one PNG: a line per row, the query apart on the left, similarities under each image."""
    columns = 1 + max((len(r.found) for r in rows), default=0)
    gap, text = 4, 12
    sheet = Image.new("RGB", (columns * (side + gap) + gap * 3, len(rows) * (side + text + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = gap + r * (side + text + gap)
        items = [(row.query, "query")] + [(p, f"{s:.3f}") for p, s in row.found]
        for c, (path, caption) in enumerate(items):
            x = gap + c * (side + gap) + (gap * 2 if c else 0)
            thumb = thumbnail(path, side)
            sheet.paste(thumb, (x + (side - thumb.width) // 2, y + (side - thumb.height) // 2))
            draw.text((x + 2, y + side), caption, fill=(0, 0, 0))
    with atomic_write(out) as f:
        sheet.save(f, format="PNG")


def write_pairs_csv(pairs: Sequence[tuple[str, str, float]], out: Path) -> None:
    """``path_a, path_b, similarity`` a line, most similar first."""
    with atomic_write(out, "w") as f:
        writer = csv.writer(f)
        writer.writerow(["path_a", "path_b", "similarity"])
        writer.writerows((a, b, f"{s:.6f}") for a, b, s in pairs)
