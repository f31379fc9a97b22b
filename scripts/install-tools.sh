#!/usr/bin/env bash
# Installs the programs and libraries tests drive or load: gdb (heapscope attach on Python
# before 3.14), tmux (the --live terminal UI under a real terminal), strace (a second tracer),
# Go (`go tool pprof` reads the pprof export), jemalloc (`--native` under a preloaded allocator)
# and a C++ compiler (the known-answer test of `new`/`delete`).
# Safe to run again. Needs root (apt) or sudo; elsewhere the tests that need them skip.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
missing=()
# command or file the package provides, then the package
for pair in gdb:gdb tmux:tmux strace:strace go:golang-go g++:g++ \
    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2:libjemalloc2; do
    what="${pair%%:*}"
    package="${pair#*:}"
    case "$what" in
    /*) [ -e "$what" ] || [ "$(uname -m)" != x86_64 ] || missing+=("$package") ;;
    *) command -v "$what" >/dev/null || missing+=("$package") ;;
    esac
done
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-tools: please install ${missing[*]} (no apt-get here)" >&2
        exit 0
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
