#!/usr/bin/env bash
# Re-resolves every optional dependency group (test, lint, bench) in a fresh venv with no
# constraints and writes the versions pip chose to requirements/constraints.txt, which the
# Makefile's install targets pass to pip with -c. Run `make lock`, then `make test` and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="$(mktemp -d)/lock-venv"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q -U pip
# The package's own requirements (extras) come from pyproject.toml; heapscope itself is left out.
extras="$("$VENV/bin/python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)
deps = list(project["project"].get("dependencies", []))
deps += [d for group in project["project"]["optional-dependencies"].values() for d in group]
deps += project["build-system"]["requires"]
print("\n".join(deps))
PY
)"
mapfile -t reqs <<<"$extras"
"$VENV/bin/pip" install -q "${reqs[@]}"
{
    echo "# Pinned versions of every test, lint and bench dependency (and theirs), used by the Makefile's"
    echo "# install targets (pip -c). Refresh with 'make lock' (a fresh venv resolves the newest releases)."
    echo "# Generated on $(date -u +%F) for CPython $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')."
    "$VENV/bin/pip" freeze --exclude pip --exclude setuptools
} > requirements/constraints.txt
rm -rf "$(dirname "$VENV")"
echo "wrote requirements/constraints.txt ($(grep -c '==' requirements/constraints.txt) pins)"
