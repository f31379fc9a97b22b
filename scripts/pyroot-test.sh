#!/usr/bin/env bash
# Inside the Python root (scripts/in-pyroot.sh): install heapscope for Python $1 in a fresh venv
# and run the Python suite; further arguments go to pytest (PYTEST_ARGS of the Makefile).
# Each version builds in its own target directory, so versions do not rebuild each other.
set -euo pipefail
v="$1"
shift
# The attach (gdb before 3.14) and live-UI (tmux) tests need these tools in the root too; a root
# built before they were in make-pyroot.sh's package list gets them here.
if ! command -v gdb >/dev/null || ! command -v tmux >/dev/null || ! command -v strace >/dev/null; then
    apt-get -o Acquire::Check-Valid-Until=false update -qq  # a sid snapshot may be past its date
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdb tmux strace
fi
venv="/opt/heapscope/venv-$v"
rm -rf "$venv"
"python$v" -m venv "$venv"
export CARGO_TARGET_DIR="/src/target/py$v"
make install PYTHON="$venv/bin/python"
make test-python PYTHON="$venv/bin/python" PYTEST_ARGS="$*"
