"""The example program of the report tests; the fixtures record it with ``heapscope run``.

At its peak it holds the records, their index, the rendered rows and one 8 MiB blob; at its end
it keeps only the index (the "leak").
"""

from __future__ import annotations

KEPT: list[object] = []


def load_records(n: int) -> list[dict[str, object]]:
    """Build n small records (many small allocations)."""
    return [{"id": i, "name": f"user-{i}", "tags": [str(i % 7)] * 3} for i in range(n)]


def build_index(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    """Index the records by name (kept until exit)."""
    return {r["name"]: r for r in records}


def render_rows(records: list[dict[str, object]]) -> list[str]:
    """Render one HTML row per record (a temporary peak)."""
    return [f"<tr><td>{r['id']}</td><td>{r['name']}</td></tr>" for r in records]


def make_blob(size: int) -> bytes:
    """One big temporary buffer."""
    return b"x" * size


def main() -> None:
    """Load, index, render; keep the index."""
    records = load_records(40_000)
    index = build_index(records)
    rows = render_rows(records)
    blob = make_blob(8 << 20)
    KEPT.append(index)
    del records, rows, blob


if __name__ == "__main__":
    main()
