#!/usr/bin/env bash
# Re-lock the whole dependency tree with hashes after editing requirements*.txt (the direct pins):
#   scripts/lock.sh
# writes requirements.lock and requirements-dev.lock, which start-demo.sh and run-tests.sh install with
# `pip install --require-hashes`. The lock tool is uv, itself pinned, in a throw-away virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
UV_VERSION=0.9.5
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$(find_python)" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
for name in requirements requirements-dev; do
    "$tools/bin/uv" pip compile "$name.txt" --universal --generate-hashes --python-version 3.12 \
        --no-header --quiet -o "$name.lock"
    echo "wrote $name.lock ($(grep -c '^[a-z0-9]' "$name.lock") packages)"
done
