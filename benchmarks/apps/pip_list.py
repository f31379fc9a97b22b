"""pip run in-process, as ``python -m pip`` would: ``pip list``, then ``freeze`` and ``show``.

``python pip_list.py [ROUNDS]``: the first command is ``pip list``; each round then runs
``pip list --format=json``, ``pip freeze`` and ``pip show pip``. No network: the version
check and the index are disabled.
"""

from __future__ import annotations

import os
import runpy
import sys

os.environ.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PIP_NO_INPUT="1")


def pip(*args: str) -> None:
    """``python -m pip ARGS`` in this process; SystemExit with a non-zero status is an error."""
    saved = sys.argv
    sys.argv = ["pip", *args]
    try:
        runpy.run_module("pip", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    finally:
        sys.argv = saved


def main(rounds: int) -> None:
    """``pip list``, then ``rounds`` rounds of list/freeze/show."""
    pip("list")
    for _ in range(rounds):
        pip("list", "--format=json")
        pip("freeze")
        pip("show", "pip")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
