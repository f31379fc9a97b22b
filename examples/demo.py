"""A small program with a temporary peak and a leak, for `heapscope run`.

    heapscope run -o demo.hsc examples/demo.py && heapscope report demo.hsc
"""

CACHE: list[bytes] = []


def parse_batch(n: int) -> int:
    """Builds a large temporary structure: it holds the memory at the peak, then is freed."""
    rows = [{"id": i, "name": f"row-{i}", "tags": [i % 3, i % 5]} for i in range(n)]
    return sum(len(r["name"]) for r in rows)


def remember(n: int) -> None:
    """Keeps blocks in a module-level cache until exit: what a leak looks like."""
    for i in range(n):
        CACHE.append(b"x" * (1000 + i % 100))


def main() -> None:
    total = parse_batch(200_000)
    remember(5_000)
    print(f"parsed {total} characters, cached {len(CACHE)} blocks")


if __name__ == "__main__":
    main()
