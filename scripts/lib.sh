# Shared by start-demo.sh and run-tests.sh: find Python >= 3.12 and prepare .venv.
# shellcheck shell=bash

find_python() {
    local candidate version
    local candidates=("${PYTHON:-}" python3.13 python3.12 python3.14 python3)
    local root
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null || true)
    fi
    root=${root:-$HOME/.pyenv}
    for v in 3.13.0 3.12.1; do
        candidates+=("$root/versions/$v/bin/python3")
    done
    for d in "$root"/versions/3.1[2-9]*; do
        [ -x "$d/bin/python3" ] && candidates+=("$d/bin/python3")
    done
    for candidate in "${candidates[@]}"; do
        [ -n "$candidate" ] || continue
        if [ -x "$candidate" ] || command -v "$candidate" >/dev/null 2>&1; then
            version=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2]) if sys.version_info >= (3, 12) else sys.exit(1)' 2>/dev/null) || continue
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    # ensure_venv REQUIREMENTS_FILE: installs its lock (REQUIREMENTS.lock: every package, pinned, with
    # hashes; made by scripts/lock.sh) once per change of the locks.
    local req=${1%.txt}.lock py
    if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        echo "The existing .venv uses Python < 3.12; recreating it." >&2
        rm -rf .venv
    fi
    if [ ! -x .venv/bin/python ]; then
        if ! py=$(find_python); then
            echo "error: Python 3.12 or newer is required and none was found." >&2
            echo "       Install python3.12+ (or pyenv install 3.13) or set PYTHON=/path/to/python3.12." >&2
            exit 2
        fi
        echo "Creating .venv with $py ($("$py" --version 2>&1))"
        "$py" -m venv .venv
    fi
    local name stamp
    name=$(basename "$req" .lock)
    stamp=.venv/.installed-$name-$(cat requirements*.lock | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ]; then
        echo "Installing pinned dependencies from $req ..."
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "$req"
        rm -f .venv/.installed-"$name"-*
        touch "$stamp"
    fi
}
