"""numpy-heavy: small and medium arrays made, combined and dropped in a loop, some held.

Every array buffer is reported through PyTraceMalloc_Track/Untrack (numpy's domain 389047), so
this measures the cost of that route beside the interpreter's own allocations.
"""

import sys

import numpy as np

N = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000


def step(i):
    a = np.arange(64 + i % 512, dtype=np.float64)
    b = a * 2.0 + 1.0
    c = np.concatenate([a, b])
    return float(c.sum()) + float(np.sqrt(b).mean())


def main():
    total = 0.0
    held = []
    for i in range(N):
        total += step(i)
        if i % 50 == 0:
            held.append(np.zeros(1000 + i % 5000))
        if len(held) > 200:
            del held[:100]
    grid = [np.ones((256, 256)) * k for k in range(40)]
    total += sum(float(g.sum()) for g in grid)
    print(int(total))


main()
