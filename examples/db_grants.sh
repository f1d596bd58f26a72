#!/usr/bin/env bash
# The grants a per-person PostgreSQL login needs, as the registry's owner prints them.
# Usage: examples/db_grants.sh DB_URL [WORKDIR]   (DB_URL: an empty database, as its owner)
# docs/deployment.md shows its output (python -m tests.transcripts --write regenerates it).
set -euo pipefail
DB=$1
WORK=${2:-db-grants}
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
export REGISTRY_HOME=$WORK/registry
shown() { local a out='$'; for a in "$@"; do [[ $a == *[[:space:]]* ]] && a="\"$a\""; out+=" $a"; done; printf '\n%s\n' "$out"; }
say() { shown "$@"; "$@"; }

say registry init --db "$DB"
say registry db grants alice
