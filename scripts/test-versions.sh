#!/usr/bin/env bash
# `make test-versions`: heapscope's whole Python suite on every CPython of the Python root
# (scripts/make-pyroot.sh builds it once per machine: Debian unstable's 3.13, 3.14 and 3.15).
# Per version, inside the root: a fresh venv, `make install` (heapscope built for that
# version, with the pinned test dependencies), `make test-python`. Needs root (debootstrap,
# chroot). The browser tests skip inside the root (no Chromium there).
#
#   scripts/test-versions.sh [VERSION...]     default: HEAPSCOPE_PYVERSIONS or 3.13 3.14 3.15
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
if [ "${#versions[@]}" -eq 0 ]; then
    read -r -a versions <<< "${HEAPSCOPE_PYVERSIONS:-3.13 3.14 3.15}"
fi
scripts/make-pyroot.sh
failed=()
for v in "${versions[@]}"; do
    echo "test-versions: Python $v"
    start=$SECONDS
    if scripts/in-pyroot.sh scripts/pyroot-test.sh "$v"; then
        echo "test-versions: Python $v passed in $((SECONDS - start)) s"
    else
        echo "test-versions: Python $v FAILED after $((SECONDS - start)) s"
        failed+=("$v")
    fi
done
if [ "${#failed[@]}" -ne 0 ]; then
    echo "test-versions: failed on ${failed[*]}" >&2
    exit 1
fi
