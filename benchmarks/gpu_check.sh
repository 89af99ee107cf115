#!/usr/bin/env bash
# One short GPU check for the device machine (torch preinstalled there; no plotly/nibabel needed):
# the CUDA tests, then a short CUDA training + evaluation run of the CLI.
set -uo pipefail
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
for s in mse sgd-jitter; do
  /usr/bin/time -f "train $s wall %e s" python3 -m landscape.cli train --task mri --strategy $s --epochs 2 --device cuda --seed 0 --out "$OUT/mri-$s" --quiet 2>&1 | tail -3
done
/usr/bin/time -f "evaluate wall %e s" python3 -m landscape.cli evaluate "$OUT/mri-mse" "$OUT/mri-sgd-jitter" --device cuda --out "$OUT/eval.json" 2>&1 | tail -12
