#!/usr/bin/env bash
# Inside the Python root (scripts/in-pyroot.sh): install heapscope for Python $1 in a fresh venv
# and run the Python suite; further arguments go to pytest (PYTEST_ARGS of the Makefile).
# Each version builds in its own target directory, so versions do not rebuild each other.
set -euo pipefail
v="$1"
shift
# What tests need besides Python (make-pyroot.sh puts it in the root; a root built before
# something joined the list gets it here).
scripts/install-tools.sh
venv="/opt/heapscope/venv-$v"
rm -rf "$venv"
"python$v" -m venv "$venv"
export CARGO_TARGET_DIR="/src/target/py$v"
make install PYTHON="$venv/bin/python"
make test-python PYTHON="$venv/bin/python" PYTEST_ARGS="$*"
