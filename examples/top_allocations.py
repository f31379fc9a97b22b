"""Print the top allocations of a small program with heapscope's drop-in tracemalloc.

Run: python examples/top_allocations.py
"""

import heapscope.tracemalloc as tracemalloc


def load_words(n: int) -> list[str]:
    return [f"word-{i}" * 4 for i in range(n)]


def index(words: list[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(words)}


def main() -> None:
    tracemalloc.start(10)
    words = load_words(100_000)
    table = index(words)
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"traced: {current / 1e6:.1f} MB now, {peak / 1e6:.1f} MB at the peak")
    print("Top 5 lines:")
    for stat in snapshot.statistics("lineno")[:5]:
        print(f"  {stat}")
    print(f"({len(words)} words, {len(table)} entries)")


if __name__ == "__main__":
    main()
