"""Fine-tuning on 1% and 10% of CIFAR-10's labels (issue 43): an encoder against the same backbone
untrained, 3 seeds (each seed its own labelled subset, held-out images and initialisation), by
``byol.eval.protocols.finetune`` with its defaults but ``epochs=1`` (so 1,000 steps at both fractions:
143 epochs of the 1% subset, 13 of the 10%). One JSON line per (fraction, seed, start) in OUT/results.jsonl;
lines already there are not run again.

    .venv/bin/python docs/results/finetune-cpu/run.py RUN OUT
"""

import json
import sys
import time
from pathlib import Path

from byol.eval.protocols import finetune
from byol.eval.runner import EncoderEval

run, out = sys.argv[1], Path(sys.argv[2])
data = Path("../shared/data/cifar10")
out.mkdir(parents=True, exist_ok=True)
results = out / "results.jsonl"
done = (
    {(r["label_fraction"], r["seed"], r["start"]) for r in map(json.loads, results.open())}
    if results.exists()
    else set()
)
for fraction in (0.01, 0.1):
    for seed in (0, 1, 2):
        ev = EncoderEval.load(run, "cpu", seed=seed, progress=False)
        for start, encoder in (("pretrained", ev), ("untrained", ev.untrained())):
            if (fraction, seed, start) in done:
                continue
            began = time.perf_counter()
            r = finetune(encoder, str(data / "train"), str(data / "test"), fraction, epochs=1)
            line = {"start": start, "seed": seed, "run": run, **r, "seconds": round(time.perf_counter() - began, 1)}
            with results.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(
                json.dumps({k: line[k] for k in ("label_fraction", "seed", "start", "top1", "head_start", "lr")}),
                flush=True,
            )
