"""Code made and dropped at run time: exec/compile, namedtuple and dataclass factories."""

import dataclasses
import os
from collections import namedtuple

SCALE = int(os.environ.get("PARITY_SCALE", "1"))


def main() -> None:
    kept = []
    for i in range(500 * SCALE):
        namespace: dict[str, object] = {}
        exec(
            compile(f"def f(x):\n    return [x] * {i % 50 + 1}\n", "<generated>", "exec"), namespace
        )
        kept.append(len(namespace["f"](i)))  # type: ignore[operator]
    for i in range(40 * SCALE):
        point = namedtuple(f"Point{i}", ["x", "y", "z"])
        kept.append(point(1, 2, 3).z)
        record = dataclasses.make_dataclass(f"Record{i}", [("a", int), ("b", str)])
        kept.append(record(1, "b").a)  # type: ignore[call-arg]
    print(sum(kept))


if __name__ == "__main__":
    main()
