"""sympy: simplify, integrate, series expansions and a symbolic matrix determinant.

``python algebra_sympy.py [ROUNDS]``: each round works on slightly different expressions.
"""

from __future__ import annotations

import sys

import sympy as sp


def one_round(k: int) -> list[str]:
    """Simplify, integrate, expand and take a determinant; the results as text."""
    x, y, z = sp.symbols("x y z")
    out = []
    expr = (sp.sin(x) ** 2 + sp.cos(x) ** 2) * (x**2 - 1) / (x - 1) + sp.exp(k * x) / sp.exp(x)
    out.append(sp.simplify(expr))
    out.append(sp.integrate(x ** (k + 1) * sp.exp(-x) * sp.sin(x), x))
    out.append(sp.integrate(1 / (x**2 + k + 1), (x, 0, sp.oo)))
    out.append(sp.series(sp.tan(x) * sp.exp(k * x), x, 0, 8))
    m = sp.Matrix(4, 4, lambda i, j: (x + i) ** j + (y * z if i == j else k))
    out.append(sp.factor(m.det()))
    out.append(sp.solve([x + y - k, x - y - 1], [x, y]))
    return [str(r) for r in out]


def main(rounds: int) -> None:
    """Print each round's results."""
    for k in range(1, rounds + 1):
        print("\n".join(one_round(k)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
