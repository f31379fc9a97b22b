#!/usr/bin/env bash
# Installs the programs the attach and live-UI tests drive: gdb (heapscope attach on Python
# before 3.14), tmux (the --live terminal UI under a real terminal), strace (a second tracer).
# Safe to run again. Needs root (apt) or sudo; elsewhere the tests that need them skip.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
missing=()
for tool in gdb tmux strace; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-tools: please install ${missing[*]} (no apt-get here)" >&2
        exit 0
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
