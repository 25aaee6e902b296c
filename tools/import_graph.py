"""Draws the import graph of the shared library and the Lambda handlers over it into docs/architecture.md.

`make import-graph` rewrites the Mermaid block between the page's markers; `--check` (and
tests/unit/test_architecture_doc.py) fails when the block there is not what the code imports today. The graph is
read by grimp, the library under import-linter, so it is the graph the contracts in pyproject.toml check; the
layers, and their titles, are that file's `library-layers` contract.

To stay readable the drawing is collapsed: one box per module of ``encore`` (``encore.imports.*`` is one box),
one box per function folder under ``lambdas/``, and an arrow only where no longer path already leads (the
transitive reduction: ``recommend -> models`` is left out because ``recommend -> config -> models`` is drawn).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
START, END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"
LIBRARY, HANDLERS = "encore", "lambdas"
LAYERS_CONTRACT = "library-layers"

Edge = tuple[str, str]


def layers(pyproject: Path = ROOT / "pyproject.toml") -> list[tuple[str, list[str]]]:
    """The layers contract's layers, top first, each with its title (the contract's name reads
    ``encore: <title> > <title> > ...``) and the module names it holds (optional ones included)."""
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if c["id"] == LAYERS_CONTRACT)
    titles = [t.strip() for t in contract["name"].split(":", 1)[1].split(">")]
    if len(titles) != len(contract["layers"]):
        raise ValueError(f"{LAYERS_CONTRACT}: the name gives {len(titles)} titles for {len(contract['layers'])} layers")
    drawn = []
    for title, layer in zip(titles, contract["layers"], strict=True):
        names = [n.strip().strip("()") for n in layer.replace("|", ":").split(":")]
        drawn.append((title, [f"{LIBRARY}.{n}" for n in names if n]))
    return drawn


@contextmanager
def _repository_on_path() -> Iterator[None]:
    # lambdas/ is a folder of function folders, read as a namespace package from the repository root.
    added = str(ROOT) not in sys.path
    if added:
        sys.path.insert(0, str(ROOT))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(ROOT))


def _box(module: str) -> str:
    """The box a module is drawn in: ``encore.<module>`` or ``lambdas.<function folder>``."""
    return ".".join(module.split(".")[:2])


def imports() -> tuple[set[str], set[Edge]]:
    """The boxes, and who imports whom among them, as read from the code."""
    with _repository_on_path():
        graph = grimp.build_graph(LIBRARY, HANDLERS, cache_dir=None)
    boxes = {_box(m) for m in graph.modules if "." in m}
    edges = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            importer, target = _box(module), _box(imported)
            if importer != target and target.startswith(f"{LIBRARY}."):
                edges.add((importer, target))
    return boxes, edges


def reduce(edges: set[Edge]) -> set[Edge]:
    """The edges no longer path implies. (In a cycle neither way round is dropped for the other.)"""
    successors: dict[str, set[str]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in successors.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {node: reachable(node) for node in successors}
    return {
        (a, c)
        for a, c in edges
        if not any(c in reach.get(b, ()) and b not in reach.get(c, ()) for b in successors[a] - {c})
    }


def _id(box: str) -> str:
    return box.replace(".", "_")


def render() -> str:
    """The Mermaid block, markers included."""
    boxes, edges = imports()
    edges = reduce(edges)
    lines = [START, "```mermaid", "graph TD"]
    handlers = sorted(b for b in boxes if b.startswith(f"{HANDLERS}."))
    lines.append(f'  subgraph {HANDLERS}["lambdas/ (entry points)"]')
    lines += [f'    {_id(b)}["{b.split(".", 1)[1]}/"]' for b in handlers]
    lines.append("  end")
    placed: set[str] = set()
    library = {b for b in boxes if b.startswith(f"{LIBRARY}.")}
    for number, (title, modules) in enumerate(layers(), start=1):
        present = sorted(m for m in modules if m in library)
        placed.update(present)
        lines.append(f'  subgraph layer{number}["{title}"]')
        lines += [f'    {_id(m)}["{m.split(".", 1)[1]}"]' for m in present]
        lines.append("  end")
    if unplaced := sorted(library - placed):
        lines.append('  subgraph unplaced["in no layer of the contract"]')
        lines += [f'    {_id(m)}["{m.split(".", 1)[1]}"]' for m in unplaced]
        lines.append("  end")
    lines += [f"  {_id(a)} --> {_id(b)}" for a, b in sorted(edges)]
    lines += ["```", END]
    return "\n".join(lines)


def drawn(page: str) -> str:
    """The block between the markers (markers included) as the page has it; empty when it has none."""
    start, end = page.find(START), page.find(END)
    if start < 0 or end < start:
        return ""
    return page[start : end + len(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the page's graph is stale; write nothing")
    args = parser.parse_args(argv)
    page = DOC.read_text()
    current, fresh = drawn(page), render()
    if not current:
        print(f"{DOC.relative_to(ROOT)} has no {START} ... {END} block", file=sys.stderr)
        return 1
    if current == fresh:
        return 0
    if args.check:
        print(f"{DOC.relative_to(ROOT)}: the import graph is stale; run `make import-graph`", file=sys.stderr)
        return 1
    DOC.write_text(page.replace(current, fresh))
    print(f"{DOC.relative_to(ROOT)}: import graph redrawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
