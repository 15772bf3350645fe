#!/bin/bash
# 5-minute proxies of make demo: NAME then --set flags
cd /work/main
D=../shared/data/cifar10
LEN=${LEN:---time-budget 5}
while read -r name flags; do
  [ -z "$name" ] && continue
  out=/work/tune/$name
  if [ ! -f $out/knn.json ]; then
    .venv/bin/python -m byol pretrain $D/train --out $out --preset cpu $LEN --no-progress $flags > $out.log 2>&1
    .venv/bin/python -m byol eval knn $out --train $D/train --test $D/test --json 2>/dev/null | tail -1 > $out/knn.json
  fi
  echo "$name $(python3 -c "import json;d=json.load(open('$out/knn.json'));s=json.load(open('$out/summary.json'));print(round(100*d['top1'],2), s['steps'], round(s['epochs'],2))")" >> /work/tune/results.txt
done < /work/tune/$1
