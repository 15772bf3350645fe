"""``byol ablate``: its variants, its claims, and the collapse findings on small real data."""

import json

import pytest

from byol import ablate
from byol.ablate import VARIANTS, claims, suite_variants, variant_config
from byol.cli.__main__ import main as cli
from byol.errors import ByolError
from byol.presets import resolve


def test_suites_name_known_variants_and_a_wrong_name_is_one_clear_error():
    assert [v.name for v in suite_variants("collapse")] == ["baseline", "no_predictor", "tau_0", "tau_1"]
    assert len(suite_variants("paper")) == 23 and all(v.name in VARIANTS for v in suite_variants("paper"))
    with pytest.raises(ByolError, match="unknown variant tau_2.*suites: paper"):
        suite_variants("baseline,tau_2")


def test_small_batches_accumulate_up_to_the_base_batch_as_the_paper_emulated_them():
    base = resolve("cpu", {})  # batch 256
    small = variant_config(base, VARIANTS["simclr_batch_32"], epochs=3)
    assert (small.optim.batch_size, small.optim.accumulate, small.model.method) == (32, 8, "simclr")
    big = variant_config(base, VARIANTS["batch_512"], epochs=3)
    assert (big.optim.batch_size, big.optim.accumulate, big.run.epochs, big.run.time_budget) == (512, 1, 3, None)
    timed = variant_config(base, VARIANTS["baseline"], minutes=2.5)
    assert timed.run.time_budget == 2.5
    gn = variant_config(base, VARIANTS["encoder_gn_ws"], epochs=1)
    assert (gn.model.encoder_norm, gn.model.norm) == ("groupnorm-ws", "groupnorm")  # no batch statistics at all


def _results(**knn):
    variants = {n: {"knn_top1": v, "collapse_std": 0.8} for n, v in knn.items()}
    return {"untrained": {"top1": 0.20}, "variants": variants}


def test_claims_compare_the_right_variants():
    by_claim = lambda res: {c["claim"].split(" (")[0]: c["reproduced"] for c in claims(res)}  # noqa: E731
    res = _results(baseline=0.40, tau_1=0.30, simclr=0.35, batch_32=0.38, simclr_batch_32=0.20)
    res["variants"]["no_predictor"] = {"collapse_std": 0.02}
    got = by_claim(res)
    assert got["Without the predictor BYOL collapses"] is True
    assert got["τ = 1"] is True
    assert got["BYOL is more robust to small batches than SimCLR"] is True
    assert got["With τ = 0 BYOL collapses"] is None and got["Removing colour hurts BYOL less than SimCLR"] is None
    res = _results(baseline=0.40, tau_1=0.45, heads_layernorm=0.35)
    got = by_claim(res)
    assert got["τ = 1"] is False and got["LayerNorm in the heads does not save it"] is False


@pytest.mark.slow
def test_ablate_shows_collapse_without_the_predictor_and_none_with_a_frozen_target(small, tmp_path, monkeypatch):
    """15 epochs of 400 CIFAR images per variant (seconds each). Measured when written: collapse std × √d
    0.04 without the predictor, 0.78 with it; kNN on 200 test images: baseline 28.5, τ = 1 30.0,
    untrained 24.0. At this scale τ = 1 matches or beats the baseline (2 of 4 seeds and lengths tried):
    the paper's gap (72.5 vs 18.8) does not show in minutes, so it is not asserted."""
    out = tmp_path / "abl"
    argv = [
        "ablate", str(small["train"]), "--test", str(small["test"]), "--out", str(out), "--preset", "cpu",
        "--suite", "no_predictor,tau_1", "--epochs", "15", "--batch-size", "32", "--log-every", "5",
        "--cache-dir", str(small["cache"]), "--workers", "0", "--set", "augment.compile=off",
        "--set", "model.width=0.25", "--set", "model.projector_hidden=128", "--set", "model.predictor_hidden=128",
    ]  # fmt: skip
    assert cli(argv) == 0
    results = json.loads((out / "ablations.json").read_text())
    v = results["variants"]
    assert list(v) == ["baseline", "no_predictor", "tau_1"]  # the baseline first, though not named
    assert v["no_predictor"]["collapse_std"] < ablate.COLLAPSED < 0.5 < v["baseline"]["collapse_std"]
    assert v["tau_1"]["collapse_std"] > 0.5
    assert v["baseline"]["images_seen"] == v["no_predictor"]["images_seen"] == v["tau_1"]["images_seen"] > 0
    # kNN against the untrained encoder is reported, not asserted: on 200 test images its standard
    # error (3 points) is the size of the gain (28.5 and 30.0 vs 24.0 when written); test_pretrain's
    # learned run shows learning with a 3-standard-error margin.
    assert 0 <= results["untrained"]["top1"] <= 1 and all(0 <= x["knn_top1"] <= 1 for x in v.values())
    claim = {c["claim"]: c["reproduced"] for c in results["claims"]}
    assert claim["Without the predictor BYOL collapses"] is True
    report = (out / "ablations.md").read_text()
    assert "| no_predictor: no predictor |" in report and "table 5b" in report and "| 0.2 |" in report
    assert (out / "collapse.png").stat().st_size > 0 and (out / "accuracy.png").stat().st_size > 0

    def no_training(*a, **k):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr("byol.train.pretrain.pretrain", no_training)
    assert cli(argv) == 0
    assert json.loads((out / "ablations.json").read_text())["variants"] == v
    (out / "ablations.md").unlink()
    assert cli([*argv, "--report-only"]) == 0 and (out / "ablations.md").read_text() == report
