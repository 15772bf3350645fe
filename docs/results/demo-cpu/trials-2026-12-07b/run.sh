#!/bin/bash
# demo-length trials of 2026-12-07 (second sitting): run as `bash run.sh t3` (lists and outputs under /work/tune3 then)
# demo-length (10-minute budget) trials of the demo recipe with one change: NAME then flags per line of
# the file $1 (t1 here; the lists were kept under /work/tune3 when run)
cd /work/main
D=../shared/data/cifar10
BASE="--batch-size 128 --set optim.tau_base=0.8 --set augment.view1.crop_scale=[0.5,1.0] --set augment.view2.crop_scale=[0.5,1.0]"
while read -r name flags; do
  [ -z "$name" ] && continue
  out=/work/tune3/$name
  if [ ! -f $out/knn.json ]; then
    .venv/bin/python -m byol pretrain $D/train --out $out --preset cpu --time-budget ${MIN:-10} --no-progress $BASE $flags > $out.log 2>&1
    .venv/bin/python -m byol eval knn $out --train $D/train --test $D/test --json 2>/dev/null | tail -1 > $out/knn.json
  fi
  echo "$name $(python3 -c "import json;d=json.load(open('$out/knn.json'));s=json.load(open('$out/summary.json'));print(round(100*d['top1'],2), s['steps'], round(s['epochs'],2), s.get('precision'))")" >> /work/tune3/results.txt
done < /work/tune3/$1
