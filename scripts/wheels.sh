#!/usr/bin/env bash
# `make wheels`: one wheel per supported CPython (`maturin build --release -i pythonX.Y`), each
# installed in a fresh venv with no Rust toolchain reachable and smoke-tested
# (scripts/wheel-smoke.py). 3.11 is the host's Python (PYTHON, default python3); 3.13-3.15 are
# built in the Python root (scripts/make-pyroot.sh) and tested there with no Rust mounted at
# all. Wheels land in dist/; the builds share the target directories of `make build` and
# `make test-versions`. Needs root for the root's versions.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
read -r -a versions <<< "${HEAPSCOPE_PYVERSIONS:-3.13 3.14 3.15}"
rm -rf dist
mkdir -p dist

smoke() { # smoke PYTHON WHEEL: fresh venv, no cargo/rustc on PATH
    local venv
    venv="$(mktemp -d)/venv"
    "$1" -m venv "$venv"
    env -i HOME="$HOME" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 bash -c '
        set -euo pipefail
        ! command -v cargo >/dev/null && ! command -v rustc >/dev/null
        "$1/bin/python" -m pip install -q --no-index --no-deps "$2"
        cd "$(mktemp -d)" && "$1/bin/python" "$3"' bash "$venv" "$2" "$PWD/scripts/wheel-smoke.py"
    rm -rf "$(dirname "$venv")"
}

# The host's version.
build_venv="$(mktemp -d)/venv"
"$PYTHON" -m venv "$build_venv"
"$build_venv/bin/python" -m pip install -q -c requirements/constraints.txt maturin
host_version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}" "$build_venv/bin/maturin" build --release \
    -i "$PYTHON" --out dist
smoke "$PYTHON" "$(ls dist/*-cp"${host_version/./}"-*.whl)"
rm -rf "$(dirname "$build_venv")"

# The root's versions: built with the host's Rust mounted, tested without it.
scripts/make-pyroot.sh
for v in "${versions[@]}"; do
    scripts/in-pyroot.sh bash -c '
        set -euo pipefail
        v="$1"
        venv="/opt/heapscope/maturin-$v"
        [ -x "$venv/bin/maturin" ] || { "python$v" -m venv "$venv" &&
            "$venv/bin/python" -m pip install -q -c requirements/constraints.txt maturin; }
        CARGO_TARGET_DIR="target/py$v" "$venv/bin/maturin" build --release -i "python$v" \
            --out dist' bash "$v"
    wheel="$(ls dist/*-cp"${v/./}"-*.whl)"
    HEAPSCOPE_PYROOT_RUST=0 scripts/in-pyroot.sh bash -c '
        set -euo pipefail
        ! command -v cargo >/dev/null && ! command -v rustc >/dev/null
        [ ! -e /root/.cargo/bin/cargo ]
        venv="$(mktemp -d)/venv"
        "python$1" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --no-index --no-deps "$2"
        cd "$(mktemp -d)" && "$venv/bin/python" /src/scripts/wheel-smoke.py
        rm -rf "$(dirname "$venv")"' bash "$v" "$wheel"
done
ls -l dist
