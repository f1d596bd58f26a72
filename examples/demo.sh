#!/usr/bin/env bash
# End-to-end demo on the embedded default (SQLite + local Zarr) with a tiny model built
# locally: nothing is downloaded. Usage: examples/demo.sh [WORKDIR]   (default: ./demo)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-demo}
rm -rf "$WORK" && mkdir -p "$WORK"
export REGISTRY_HOME="$WORK/home"
say() { printf '\n$ %s\n' "$*"; "$@"; }

python -m registry.testing.tiny_model "$WORK/models"
say registry init
say registry base add tiny "$WORK/models/base"
# train two preferences against the pinned base: θ+ by DPO, θ− with labels switched
# (the defaults suit pretrained models; a random tiny model needs a much larger step)
say registry add-preference verbose --base tiny --seed 0 --steps 20 --learning-rate 1e-3
say registry add-preference helpful --base tiny --data "$HERE/tests/data/pku_sample.jsonl" --seed 0 --steps 10 --learning-rate 1e-3
# a vector trained elsewhere can be imported too
say registry vector import drift --base tiny --positive "$WORK/models/plus" --negative "$WORK/models/minus"
say registry interference --base tiny --plot "$WORK/interference.png"
say registry vector compare verbose helpful
cat > "$WORK/verbose-helpful.yaml" <<'YAML'
name: verbose-helpful
base: tiny
method: linear
terms:
  - vector: verbose
    weight: 1.0
  - vector: helpful@v1
    weight: 0.5
YAML
say registry recipe add "$WORK/verbose-helpful.yaml"
# a recipe may be approved only once every vector it uses is approved
say registry approve --vector verbose@v1 --reason "demo: held-out margin checked"
say registry approve --vector helpful@v1 --reason "demo: held-out margin checked"
say registry approve verbose-helpful@v1 --reason "demo: held-out margins checked"
say registry recipe alias verbose-helpful@v1 prod
say registry vector list
say registry materialize verbose-helpful@prod --out "$WORK/merged"
say registry materialize verbose-helpful@prod --out "$WORK/merged-again" --no-reuse   # recomputed: same bytes
say registry materialize verbose-helpful@prod --out "$WORK/merged"                    # verified and reused
say cmp "$WORK/merged/model.safetensors" "$WORK/merged-again/model.safetensors"
say registry verify
say registry verify --lock "$WORK/merged/registry-lock.json"
say registry sweep verbose-helpful --vary verbose --etas -1,-0.5,0,0.5,1 --out "$WORK/sweep"
say registry log --limit 8
say registry lineage verbose-helpful@prod
say python - "$WORK/merged" <<'PY'
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
out = sys.argv[1]
model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
ids = tok("How do I boil an egg?", return_tensors="pt").input_ids
print("generated:", repr(tok.decode(model.generate(ids, max_new_tokens=12, do_sample=False)[0])))
PY
echo "demo complete: $WORK/merged loads with AutoModelForCausalLM"
