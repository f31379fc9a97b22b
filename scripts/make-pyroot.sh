#!/usr/bin/env bash
# Builds (once per machine) a Debian unstable root holding CPython 3.13, 3.14 and 3.15 with their
# headers, venv and test suites, for `make test-versions`. The root is a cache outside the
# repository: HEAPSCOPE_PYROOT (default ~/.cache/heapscope/sid-root). Needs root (debootstrap,
# chroot). Safe to run again: an existing, complete root is reused if it was built with the
# package list below (its marker file holds that list); one built with another list is rebuilt.
set -euo pipefail
ROOT="${HEAPSCOPE_PYROOT:-$HOME/.cache/heapscope/sid-root}"
VERSIONS="${HEAPSCOPE_PYVERSIONS:-3.13 3.14 3.15}"
# The tools and libraries of scripts/install-tools.sh too, so that no test skips in the root.
packages="ca-certificates,gcc,g++,libc6-dev,make,git,gdb,tmux,strace,golang-go,libjemalloc2"
for v in $VERSIONS; do
    packages="$packages,python$v-dev,python$v-venv,libpython$v-testsuite"
done
if [ -f "$ROOT/.heapscope-complete" ] && [ "$(cat "$ROOT/.heapscope-complete")" = "$packages" ]; then
    echo "pyroot: reusing $ROOT"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
mirror="$(awk '/^deb / && /debian/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
fi
debootstrap --variant=minbase --include="$packages" sid "$ROOT" ${mirror:+"$mirror"}
echo "$packages" >"$ROOT/.heapscope-complete"
echo "pyroot: built $ROOT with Python $VERSIONS"
