#!/usr/bin/env bash
# Compiles and runs scripts/frame-offsets.c against Python $1's internal headers (e.g. 3.14).
set -euo pipefail
v="$1"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -o "$out/offsets" "$(dirname "$0")/frame-offsets.c" $("python$v-config" --includes) -w
"$out/offsets"
