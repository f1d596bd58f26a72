#!/usr/bin/env bash
# A second machine joins a registry that lives in a shared database and a shared store.
# Usage: examples/second_machine.sh DB_URL [WORKDIR]
#   e.g. examples/second_machine.sh postgresql+psycopg://postgres@127.0.0.1:5432/prefs_demo
# The database must be empty (a fresh `createdb`). Machine A and machine B are two homes
# here; on real machines the store is a path both mount, or an s3:// URL. Whoever acts is the
# database login (the URL's user), as the audit log records it: no REGISTRY_ACTOR.
# docs/deployment.md shows its output (python -m tests.transcripts --write regenerates it).
set -euo pipefail
DB=$1
WORK=${2:-second-machine}
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# shows each command as typed (an argument with spaces in quotes), then runs it
shown() { local a out='$'; for a in "$@"; do [[ $a == *[[:space:]]* ]] && a="\"$a\""; out+=" $a"; done; printf '\n%s\n' "$out"; }
say() { shown "$@"; "$@"; }
fails() { shown "$@"; if "$@"; then echo "(unexpected success)"; exit 1; fi; }

python -m registry.testing.tiny_model "$WORK/models" >/dev/null 2>&1
say registry --home "$WORK/machine-a" init --db "$DB" --store "$WORK/shared/vectors.zarr"
say registry --home "$WORK/machine-a" base add tiny "$WORK/models/base"
say registry --home "$WORK/machine-a" vector import helpful --base tiny --positive "$WORK/models/plus"

# machine B: init on the same database joins the registry and the store the database records
say registry --home "$WORK/machine-b" init --db "$DB"
say cat "$WORK/machine-b/registry.toml"
say registry --home "$WORK/machine-b" vector list
say registry --home "$WORK/machine-b" verify
# asking for another store on a database that already holds a registry is refused
fails registry --home "$WORK/machine-c" init --db "$DB" --store "$WORK/machine-c/vectors.zarr"
# a registry.toml that names another store than the database records is refused on open
sed -i.bak "s#^store = .*#store = \"$WORK/machine-b/vectors.zarr\"#" "$WORK/machine-b/registry.toml"
fails registry --home "$WORK/machine-b" vector show helpful
fails registry --home "$WORK/machine-b" vector list
