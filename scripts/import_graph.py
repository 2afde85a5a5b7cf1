"""Print keel's package import graph (which package imports which) and any cycle in it."""

from __future__ import annotations

import sys
from collections import defaultdict

import grimp


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def main() -> int:
    graph = grimp.build_graph("keel")
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = package_of(module), package_of(imported)
            if source != target:
                edges[source].add(target)
    for source in sorted(edges):
        print(f"{source} -> {', '.join(sorted(edges[source]))}")
    cycles = [(a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set())]
    for a, b in cycles:
        print(f"cycle: {a} <-> {b}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
