#!/bin/bash
# trials of the demo recipe with one change: NAME then flags per line of file $1; LEN sets the length
cd /work/main
D=../shared/data/cifar10
BASE="--batch-size 128 --set optim.tau_base=0.8 --set augment.view1.crop_scale=[0.5,1.0] --set augment.view2.crop_scale=[0.5,1.0]"
mkdir -p /work/t41/runs  # the trials ran from /work/t41 (this folder holds copies)
while read -r name flags; do
  [ -z "$name" ] && continue
  out=/work/t41/runs/$name
  if [ ! -f $out/knn.json ]; then
    .venv/bin/python /work/t41/byolx.py pretrain $D/train --out $out --preset cpu ${LEN:---time-budget 10} --no-progress $BASE $flags > $out.log 2>&1
    .venv/bin/python /work/t41/byolx.py eval knn $out --train $D/train --test $D/test --json 2>/dev/null | tail -1 > $out/knn.json
  fi
  echo "$name $(python3 -c "import json;d=json.load(open('$out/knn.json'));s=json.load(open('$out/summary.json'));print(round(100*d['top1'],2), s['steps'], round(s['epochs'],2), s.get('precision'), round(s['seconds']))")" >> /work/t41/results.txt
done < /work/t41/$1
