"""Looking at an embedding: nearest neighbours as a gallery, near-duplicates, and the search under them
(exact on the torch side, a faiss index for banks of millions, the same neighbours where both can go)."""

import csv
import json

import pytest
import torch
from helpers import cifar_subset

from byol.cli.__main__ import main as cli
from byol.errors import ByolError
from byol.eval import search


def clustered_bank(n=3000, dim=48, clusters=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g)
    return centres[torch.randint(clusters, (n,), generator=g)] + 0.3 * torch.randn(n, dim, generator=g)


def test_faiss_and_torch_return_the_same_neighbours_on_a_shared_bank(monkeypatch):
    bank = clustered_bank()
    queries, own = bank[:200], torch.arange(200)
    exact_s, exact_i = search.nearest(queries, bank, 5, backend="torch", exclude=own)
    index = search.build_index(bank)
    faiss_s, faiss_i = search.nearest(queries, bank, 5, backend="faiss", exclude=own, nprobe=index.nlist)
    assert torch.equal(exact_i, faiss_i)  # every cell probed: the index is exact
    torch.testing.assert_close(exact_s, faiss_s, atol=1e-5, rtol=0)
    assert (exact_i != torch.arange(200).unsqueeze(1)).all()  # a query is not its own neighbour
    # The default probes 32 of the cells: approximate, but on clustered data nearly all found.
    _, probed_i = search.nearest(queries, bank, 5, backend="faiss", exclude=own)
    recall = sum(len(set(a) & set(b)) for a, b in zip(probed_i.tolist(), exact_i.tolist())) / exact_i.numel()
    assert recall > 0.9, recall
    # auto: the torch search below INDEX_FROM rows or INDEX_QUERIES queries, the index from there on.
    used = []
    monkeypatch.setattr(search, "build_index", lambda bank, **kw: used.append(len(bank)) or index)
    monkeypatch.setattr(search, "INDEX_QUERIES", 200)
    search.nearest(queries, bank, 5)
    monkeypatch.setattr(search, "INDEX_FROM", 3000)
    search.nearest(queries[:199], bank, 5)
    search.nearest(queries, bank, 5)
    assert used == [3000]


def test_k_larger_than_the_bank_and_too_few_images_for_a_threshold_are_one_line_each():
    bank = clustered_bank(n=8)
    with pytest.raises(ByolError, match=r"^--k 8 is more than the 7 other images of the bank$"):
        search.nearest(bank, bank, 8, exclude=torch.arange(8))
    with pytest.raises(ByolError, match=r"^8 images are too few to set a duplicate threshold .* --duplicates 0.98$"):
        search.duplicate_threshold(bank)


@pytest.mark.slow
def test_neighbours_writes_a_gallery_and_its_embeddings_which_a_second_call_reads_back(
    short_run, cifar_root, tmp_path, capsys, monkeypatch
):
    data = cifar_subset(cifar_root, "test", 6, tmp_path / "data")
    out = tmp_path / "gallery.html"
    args = ["neighbours", str(short_run[0]), str(data), "--out", str(out), "--k", "4", "--workers", "0"]
    assert cli([*args, "--png", str(tmp_path / "grid.png")]) == 0
    page = out.read_text()
    assert page.count('<div class="row">') == 10  # every class's first image
    assert page.count("<figure") == 10 * 5 and page.count("data:image/png;base64,") == 50  # self-contained
    assert 'src="http' not in page and (tmp_path / "grid.png").stat().st_size > 1000
    kept = json.loads((tmp_path / "gallery.json").read_text())
    assert len(kept["paths"]) == 60 and (tmp_path / "gallery.npy").is_file()  # kept beside the gallery
    from byol.eval.runner import EncoderEval

    monkeypatch.setattr(EncoderEval, "load", lambda *a, **k: pytest.fail("recomputed the embeddings"))
    query = kept["paths"][7]
    again = ["neighbours", str(tmp_path / "gallery.npy"), "--out", str(tmp_path / "again.html"), "--query", query]
    assert cli([*again, "--k", "3"]) == 0
    page = (tmp_path / "again.html").read_text()
    assert page.count('<div class="row">') == 1 and page.count("<figure") == 4
    capsys.readouterr()
    assert cli([*again, "--k", "60"]) == 2
    assert capsys.readouterr().err.strip() == "byol neighbours: error: --k 60 is more than the 59 other images searched"
    assert cli([*again[:-2], "--query", str(tmp_path / "elsewhere.jpg")]) == 2
    assert "not among the 60 images searched" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["neighbours", str(short_run[0]), str(tmp_path / "empty"), "--out", str(tmp_path / "x.html")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def planted_copies(cifar_root, dest, per_class=20, copies=2):
    """``per_class`` test images a class, and two copies of the first ``copies`` of each: enlarged to
    64 px and saved as JPEG (quality 90), enlarged to 40 px and saved as PNG. Returns the planted pairs
    as sets of two paths (original and copy, and the two copies)."""
    from PIL import Image

    folder = cifar_subset(cifar_root, "test", per_class, dest)
    planted = []
    for cls in sorted(p for p in folder.iterdir()):
        for original in sorted(cls.iterdir())[:copies]:
            image = Image.open(original).convert("RGB")
            up, png = cls / f"copy-64-{original.stem}.jpg", cls / f"copy-40-{original.stem}.png"
            image.resize((64, 64), Image.BICUBIC).save(up, quality=90)
            image.resize((40, 40), Image.BICUBIC).save(png)
            planted += [{str(original), str(up)}, {str(original), str(png)}, {str(up), str(png)}]
    return folder, planted


@pytest.mark.slow
def test_duplicates_at_a_given_threshold_go_to_a_csv_and_a_gallery(short_run, cifar_root, tmp_path, capsys):
    folder, planted = planted_copies(cifar_root, tmp_path / "data", per_class=4, copies=1)
    out = tmp_path / "g.html"
    args = ["neighbours", str(short_run[0]), str(folder), "--out", str(out), "--workers", "0"]
    assert cli([*args, "--duplicates", "0.5"]) == 0
    assert "(cosine ≥ 0.5000, given)" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "g-duplicates.csv").open()))
    sims = [float(r["similarity"]) for r in rows]
    assert rows and sims == sorted(sims, reverse=True) and min(sims) >= 0.5
    found = [{r["path_a"], r["path_b"]} for r in rows]
    assert all(pair in found for pair in planted)  # a weak encoder, a low threshold: the copies among many
    page = (tmp_path / "g-duplicates.html").read_text()
    assert page.count('<div class="row">') == len(rows)
    assert cli([*args, "--duplicates", "1.5"]) == 2
    assert "--duplicates 1.5: a cosine similarity in (0, 1], or nothing for auto" in capsys.readouterr().err
