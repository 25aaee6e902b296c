"""docs/architecture.md draws the import graph the code has today (tools/import_graph.py, `make import-graph`),
and the folders the import contracts read as namespace packages are this repository's."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_drawn_graph_is_the_code_s(import_graph: ModuleType) -> None:
    # Given the page as committed, When the graph is drawn from the code in memory
    page = (ROOT / "docs" / "architecture.md").read_text()
    # Then the page's block is that drawing
    assert import_graph.drawn(page) == import_graph.render(), "the import graph is stale: run `make import-graph`"


def test_every_module_of_the_library_is_drawn_in_a_layer(import_graph: ModuleType) -> None:
    boxes, _ = import_graph.imports()
    layered = {module for _, modules in import_graph.layers() for module in modules}
    assert {b for b in boxes if b.startswith("encore.")} <= layered


def test_a_shortcut_arrow_is_left_out_and_a_cycle_kept(import_graph: ModuleType) -> None:
    edges = {("a", "b"), ("b", "c"), ("a", "c"), ("x", "y"), ("y", "x"), ("w", "x"), ("w", "y")}
    assert import_graph.reduce(edges) == {("a", "b"), ("b", "c"), ("x", "y"), ("y", "x"), ("w", "x"), ("w", "y")}


@pytest.mark.parametrize("folder", ["lambdas", "glue_jobs", "sagemaker"])
def test_contract_folders_resolve_to_this_repository(folder: str) -> None:
    # lint-imports runs at the repository root; an installed package of the same name (the SageMaker SDK) would
    # take the name over and the contracts would check it instead of this folder.
    spec = importlib.machinery.PathFinder.find_spec(folder, [str(ROOT), *(p for p in sys.path if p != str(ROOT))])
    assert spec is not None
    assert list(spec.submodule_search_locations or []) == [str(ROOT / folder)]
