#!/usr/bin/env bash
# End-to-end demo on the embedded default (SQLite + local Zarr) with a tiny model built
# locally: nothing is downloaded. Usage: examples/demo.sh [WORKDIR]   (default: ./demo)
set -euo pipefail
WORK=${1:-demo}
rm -rf "$WORK" && mkdir -p "$WORK"
export REGISTRY_HOME="$WORK/home"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

python -m registry.tinymodel "$WORK/models"
say registry init
say registry base add tiny "$WORK/models/base"
say registry vector import helpful --base tiny --positive "$WORK/models/plus"
say registry vector import harmless --base tiny --positive "$WORK/models/plus2" --negative "$WORK/models/minus"
cat > "$WORK/helpful-safe.yaml" <<'YAML'
name: helpful-safe
base: tiny
method: linear
terms:
  - vector: helpful
    weight: 1.0
  - vector: harmless@v1
    weight: -0.5
YAML
say registry recipe add "$WORK/helpful-safe.yaml"
say registry recipe alias helpful-safe@v1 prod
say registry vector list
say registry materialize helpful-safe@prod --out "$WORK/merged"
say registry materialize helpful-safe@prod --out "$WORK/merged-again"
say cmp "$WORK/merged/model.safetensors" "$WORK/merged-again/model.safetensors"
say registry verify
say python - "$WORK/merged" <<'PY'
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
out = sys.argv[1]
model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
ids = tok("Please explain", return_tensors="pt").input_ids
print("generated:", repr(tok.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0])))
PY
echo "demo complete: $WORK/merged loads with AutoModelForCausalLM"
