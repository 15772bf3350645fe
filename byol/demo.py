"""``make demo``: pretrain with the ``cpu`` preset on ``$BYOL_DATA``, then kNN-evaluate the encoder.

Data: ``$BYOL_DATA`` (default ``../shared/data/cifar10/train``) and its sibling ``test`` folder
(or ``$BYOL_TEST``). Budget: ``$BYOL_DEMO_MINUTES`` (default 10). The last line printed is one
JSON object with ``knn_untrained``, ``knn_bn_adapted`` (untrained, its BatchNorm statistics adapted to
the training images: what BatchNorm alone gains), ``knn_trained``, the gains over both, ``minutes`` and
``images_seen``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from byol.errors import ByolError
from byol.eval.runner import EncoderEval, knn_evaluate, with_baselines
from byol.presets import resolve
from byol.train.pretrain import pretrain


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train = os.environ.get("BYOL_DATA", "../shared/data/cifar10/train")
    test = os.environ.get("BYOL_TEST", str(Path(train).parent / "test"))
    minutes = float(os.environ.get("BYOL_DEMO_MINUTES", "10"))
    out = Path(os.environ.get("BYOL_DEMO_OUT", f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"))
    try:
        for folder in (train, test):
            if not Path(folder).is_dir():
                raise ByolError(f"{folder} not found; set BYOL_DATA to a labelled image folder (and BYOL_TEST)")
        cfg = resolve("cpu", {"data": {"path": train}, "run": {"time_budget": minutes}})
        print(f"byol demo: pretraining on {train} for {minutes:g} minutes (preset cpu), run folder {out}")
        result = pretrain(cfg, out, resume=True)
        ev = EncoderEval.load(out, "cpu", seed=cfg.run.seed)
        print(f"byol demo: kNN (k=200, T=0.1) from {train} to {test}")
        scores = with_baselines(ev, train, lambda e: knn_evaluate(e, train, test))
    except ByolError as e:
        print(f"byol demo: error: {e}", file=sys.stderr)
        return 2
    trained, untrained, adapted = (scores[name]["top1"] for name in ("trained", "untrained", "bn-adapted"))
    print(f"kNN top-1: untrained {untrained:.2%}, BatchNorm-adapted untrained {adapted:.2%} -> trained {trained:.2%}")
    summary = {
        "knn_untrained": round(untrained, 4),
        "knn_bn_adapted": round(adapted, 4),
        "knn_trained": round(trained, 4),
        "gain": round(trained - untrained, 4),
        "gain_over_bn_adapted": round(trained - adapted, 4),
        "minutes": round(result.seconds / 60, 2),
        "images_seen": result.images_seen,
        "epochs": round(result.epochs, 2),
        "run": str(out),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
