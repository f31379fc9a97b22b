#!/usr/bin/env bash
# Installs what the browser tests of the HTML report need: Debian's headless Chromium and the
# Python driver (playwright, pointed at /usr/bin/chromium; it cannot download its own browser).
# Called from .ci/run; safe to run again. Needs root (apt) or sudo.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
if ! command -v chromium >/dev/null; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi
"$PYTHON" -m pip install -q -c "$(dirname "$0")/../requirements/constraints.txt" "playwright>=1.40"
