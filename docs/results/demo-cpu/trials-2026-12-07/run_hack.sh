#!/bin/bash
# trials of the demo recipe with one change, from the worktree /work/hack (the patch predictor-lr.diff):
# NAME then flags per line of the file $1; LEN sets the length (default a 10-minute budget)
cd /work/hack
D=../shared/data/cifar10
BASE="--batch-size 128 --set optim.tau_base=0.8 --set augment.view1.crop_scale=[0.5,1.0] --set augment.view2.crop_scale=[0.5,1.0]"
while read -r name flags; do
  [ -z "$name" ] && continue
  out=/work/tune2/$name
  if [ ! -f $out/knn.json ]; then
    /work/main/.venv/bin/python -m byol pretrain $D/train --out $out --preset cpu ${LEN:---time-budget 10} --no-progress $BASE $flags > $out.log 2>&1
    /work/main/.venv/bin/python -m byol eval knn $out --train $D/train --test $D/test --json 2>/dev/null | tail -1 > $out/knn.json
  fi
  echo "$name $(python3 -c "import json;d=json.load(open('$out/knn.json'));s=json.load(open('$out/summary.json'));print(round(100*d['top1'],2), s['steps'], round(s['epochs'],2), s.get('precision'))")" >> /work/tune2/results.txt
done < /work/tune2/$1
