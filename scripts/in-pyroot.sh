#!/usr/bin/env bash
# Runs a command inside the Debian unstable root of scripts/make-pyroot.sh (CPython 3.13-3.15),
# with this worktree at /src, the host's Rust toolchain (/root/.cargo, /root/.rustup) and the
# host's DNS and CA bundle (for pip). HEAPSCOPE_PYROOT_RUST=0 leaves Rust out.
#
#   scripts/in-pyroot.sh COMMAND...      e.g. scripts/in-pyroot.sh python3.14 -c 'print(1)'
#
# The mounts live in a private mount namespace (unshare), so they vanish when the command ends,
# whatever happens to it, never leak into the host's mount table and do not collide with a
# concurrent run; the trap unmounts them explicitly as well. Needs root; no tty needed (CI).
set -euo pipefail
ROOT="${HEAPSCOPE_PYROOT:-$HOME/.cache/heapscope/sid-root}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$(id -u)" -ne 0 ]; then
    echo "in-pyroot: needs root (chroot, mount)" >&2
    exit 2
fi
if [ ! -f "$ROOT/.heapscope-complete" ]; then
    echo "in-pyroot: no root at $ROOT: run scripts/make-pyroot.sh first" >&2
    exit 2
fi
if [ "${HEAPSCOPE_IN_NAMESPACE:-}" != 1 ]; then
    exec env HEAPSCOPE_IN_NAMESPACE=1 unshare --mount --propagation private -- "$0" "$@"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
bind() { # bind SOURCE TARGET
    mkdir -p "$2"
    mount --bind "$1" "$2"
    mounted+=("$2")
}

mkdir -p "$ROOT/proc" "$ROOT/etc/ssl/certs"
mount -t proc proc "$ROOT/proc"
mounted+=("$ROOT/proc")
# Recursive: /dev/pts and /dev/shm too (tmux needs a pty, multiprocessing semaphores /dev/shm).
mkdir -p "$ROOT/dev"
mount --rbind /dev "$ROOT/dev"
mounted+=("$ROOT/dev")
# HEAPSCOPE_PYROOT_RUST=0: no Rust in the root (testing that wheels install without it).
if [ "${HEAPSCOPE_PYROOT_RUST:-1}" != 0 ]; then
    bind "$HOME/.cargo" "$ROOT/root/.cargo"
    bind "$HOME/.rustup" "$ROOT/root/.rustup"
fi
bind "$SRC" "$ROOT/src"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"

chroot "$ROOT" /usr/bin/env -i \
    HOME=/root \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" \
    ${HEAPSCOPE_PYROOT_ENV:-} \
    bash -c 'cd /src && exec "$@"' bash "$@"
