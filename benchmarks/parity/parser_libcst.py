"""A parser: parse Python source with libcst, rename every name, print the code back."""

import os

import libcst as cst

SCALE = int(os.environ.get("PARITY_SCALE", "1"))

SOURCE = "\n".join(
    f"def function_{i}(alpha, beta=({i}, 'x')):\n"
    f"    total = [alpha * k + beta[0] for k in range({i % 7 + 1})]\n"
    f"    return {{'n': {i}, 'total': sum(total)}}\n"
    for i in range(60 * SCALE)
)


class Rename(cst.CSTTransformer):
    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=updated.value + "_")


def main() -> None:
    module = cst.parse_module(SOURCE)
    renamed = module.visit(Rename())
    print(len(renamed.code))


if __name__ == "__main__":
    main()
