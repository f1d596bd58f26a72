#!/usr/bin/env bash
# A signed release moves into an air-gapped registry as a bundle; its approvals count there
# once the signer's key is trusted. Usage: examples/bundle.sh [WORKDIR]   (default: ./bundle-demo)
# docs/deployment.md shows its output (python -m tests.transcripts --write regenerates it).
set -euo pipefail
WORK=${1:-bundle-demo}
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cd "$WORK"
# shows each command as typed (an argument with spaces in quotes), then runs it
shown() { local a out='$'; for a in "$@"; do [[ $a == *[[:space:]]* ]] && a="\"$a\""; out+=" $a"; done; printf '\n%s\n' "$out"; }
say() { shown "$@"; "$@"; }

python -m registry.testing.tiny_model models >/dev/null 2>&1
# the release key (ECDSA P-256, PEM): approvals signed with it travel with the bundle
python - <<'PY'
from pathlib import Path

from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec

key = ec.generate_private_key(ec.SECP256R1())
Path("release.key").write_bytes(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
Path("release.pub").write_bytes(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
PY
cat > helpful-safe.yaml <<'YAML'
name: helpful-safe
base: tiny
method: linear
terms:
  - vector: helpful
    weight: 0.8
YAML

export REGISTRY_HOME=$WORK/source
say registry init
say registry base add tiny models/base
say registry vector import helpful --base tiny --positive models/plus --negative models/minus
say registry recipe add helpful-safe.yaml
say registry approve --vector helpful@v1 --reason "evals passed" --sign-key release.key
say registry approve helpful-safe@v1 --reason "evals passed" --sign-key release.key
say registry export helpful-safe@v1 --out release.bundle

# … the file is carried into the air-gapped network, whose registry does not trust the key yet
export REGISTRY_HOME=$WORK/target
say registry init
say registry base add tiny models/base
say registry import-bundle release.bundle
say registry trust add release.pub --name release
say registry import-bundle release.bundle
say registry materialize helpful-safe@v1 --out helpful-safe --require-approved
