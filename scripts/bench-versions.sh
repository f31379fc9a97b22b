#!/usr/bin/env bash
# `make bench-versions`: the overhead benchmark (benchmarks/run.py, BENCH_ARGS, default
# `--quick --sections overhead`) on each CPython of the Python root, in the venvs that
# `make test-versions` made (run that first; HEAPSCOPE_BENCH_VENVS=/opt/heapscope/NAME- picks
# venvs /opt/heapscope/NAME-3.X instead). One table per version. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a versions <<< "${HEAPSCOPE_PYVERSIONS:-3.13 3.14 3.15}"
args="${BENCH_ARGS:---quick --sections overhead}"
for v in "${versions[@]}"; do
    echo "bench-versions: Python $v"
    # shellcheck disable=SC2086
    scripts/in-pyroot.sh "${HEAPSCOPE_BENCH_VENVS:-/opt/heapscope/venv-}$v/bin/python" benchmarks/run.py $args
done
