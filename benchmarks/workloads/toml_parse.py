"""Parse a generated TOML document with the pure-Python stdlib parser (tomllib)."""

import sys
import tomllib

N = int(sys.argv[1]) if len(sys.argv) > 1 else 12


def document(n_tables: int) -> str:
    """A deterministic TOML document with tables, arrays of tables, inline tables, strings."""
    parts = ['title = "bench"', 'owner = { name = "heapscope", since = 2026-01-01T00:00:00Z }']
    for i in range(n_tables):
        parts.append(f"[service.s{i}]")
        parts.append(f'name = "service-{i}"')
        parts.append(f'description = """Multi-line\\ndescription of service {i}."""')
        parts.append(f"port = {8000 + i}")
        parts.append(f"ratio = {i / 7:.6f}")
        parts.append(f"enabled = {'true' if i % 2 else 'false'}")
        parts.append(f"tags = [{', '.join(repr(f'tag{k}') for k in range(i % 6))}]")
        parts.append(f"limits = {{ cpu = {i % 8}, memory = '{i % 16}Gi', burst = {i * 3} }}")
        for k in range(3):
            parts.append(f"[[service.s{i}.endpoint]]")
            parts.append(f'path = "/api/v{k}/items/{i}"')
            parts.append(f"methods = {['GET', 'POST', 'PUT'][: k + 1]!r}")
            parts.append(f"timeout = {k * 1.5 + 0.5}")
    return "\n".join(parts) + "\n"


def main() -> None:
    """Parse the document N times and print a checksum."""
    text = document(600)
    total = 0
    docs = []
    for _ in range(N):
        doc = tomllib.loads(text)
        total += len(doc["service"])
        docs.append(doc)
    print(total, len(text))


main()
