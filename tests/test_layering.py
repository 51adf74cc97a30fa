"""The packages of flow_airflow import each other in layers, with no cycle (issue 13, "Layering").

Read from the source with ``ast`` (nothing is imported), counting imports inside functions too:
a lazy import keeps parse time low but is still a dependency. From the bottom up:

- ``common``: what compile time and run time share (records, routes, graph, ids, conditions): no other
  package of flow_airflow, and no Airflow;
- ``spec``: the flow format (load, models, checks): ``common`` only;
- ``plan``: a flow's routes and counts: ``spec``, ``common``, ``computes`` (what a compute will not
  honour) and ``settings``;
- ``render``: the Airflow DAG of a plan: ``plan``, ``spec``, ``common``, ``operators``, ``sensors`` (the
  classes it instantiates), ``assets``, ``settings``;
- ``runtime``: what an experiment does at run time: never the compile side (``render``, ``plan``,
  ``loader``) nor the operators and commands that call it;
- ``computes``: the compute kinds, each one's compute and endpoint replicas (plug-ins): never the compile
  side, nor what calls them (``runtime``, ``endpoints``, the operators).
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flow_airflow"

#: package -> the only packages (or top-level modules) of flow_airflow it may import
ALLOWED = {
    "common": set(),
    "spec": {"common"},
    "plan": {"spec", "common", "computes", "settings"},
    "render": {"plan", "spec", "common", "operators", "sensors", "assets", "settings"},
}
#: package -> packages it must not import
FORBIDDEN = {
    "runtime": {"render", "plan", "loader", "operators", "sensors", "cli", "plugin", "local_run"},
    "computes": {"render", "plan", "loader", "operators", "cli", "plugin", "local_run", "runtime", "endpoints"},
    "settings": {"computes"},  # settings reads the section; computes.templates checks templates against their kinds
}
#: packages that must not import Airflow (they are used where Airflow is not loaded)
NO_AIRFLOW = {"common"}


def _imports(file: Path) -> set[str]:
    """The absolute module names ``file`` imports (relative imports are resolved)."""
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    here = parts if file.name == "__init__.py" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # from pkg import module
    return found


def _part(module: str) -> str | None:
    """The package (or top-level module) of flow_airflow that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if parts[0] == "flow_airflow" and len(parts) > 1 else None


def _exists(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _edges() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files (relative to flow_airflow/) that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for file in sorted(PACKAGE.rglob("*.py")):
        source = file.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in _imports(file):
            target = _part(module)
            if target and target != source and _exists(target):
                edges[source][target].add(str(file.relative_to(PACKAGE)))
    return edges


EDGES = _edges()


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {target: sorted(files) for target, files in EDGES[package].items() if target not in ALLOWED[package]}
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])} of flow_airflow; it imports {wrong}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_run_time_packages_do_not_import_the_compile_side(package: str) -> None:
    wrong = {target: sorted(files) for target, files in EDGES[package].items() if target in FORBIDDEN[package]}
    assert not wrong, f"{package} must not import {sorted(FORBIDDEN[package])}; it imports {wrong}"


@pytest.mark.parametrize("package", sorted(NO_AIRFLOW))
def test_shared_packages_do_not_import_airflow(package: str) -> None:
    files = sorted((PACKAGE / package).rglob("*.py"))
    wrong = [str(f.relative_to(PACKAGE)) for f in files if any(m.split(".")[0] == "airflow" for m in _imports(f))]
    assert not wrong, f"{package} is shared with code that runs without Airflow; these import it: {wrong}"




def test_no_import_cycle_between_packages() -> None:
    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for target in sorted(t for t in EDGES.get(path[-1], {})):
            if target == start:
                return [*path, start]
            if target not in path and (found := cycle_from(start, [*path, target])):
                return found
        return None

    for package in sorted(EDGES):
        if cycle := cycle_from(package, [package]):
            pairs = itertools.pairwise(cycle)
            where = "; ".join(f"{a} -> {b} in {sorted(EDGES[a][b])}" for a, b in pairs)
            pytest.fail(f"import cycle {' -> '.join(cycle)}: {where}")


def test_the_rules_name_packages_that_exist() -> None:
    names = {*ALLOWED, *FORBIDDEN, *NO_AIRFLOW, *(t for targets in ALLOWED.values() for t in targets)}
    assert [n for n in sorted(names) if not _exists(n)] == []
