"""The package's layout: sub-packages over private modules, imports that run one way.

The import graph is read from the source (``ast``), not by importing: every ``import``
and ``from ... import`` of a spinecls module, at module level or inside a function, is
an edge, and so is the package ``__init__`` that Python runs on the way to a module
(``spinecls.persistence._base`` runs ``spinecls/persistence/__init__.py`` first). Not
edges: imports under ``if TYPE_CHECKING:`` (never run), and the PEP 562 tables of
``__init__`` modules (``_LAZY``: a public name -> the module that defines it), which
``importlib`` reads only when a user asks for the name. Those tables are checked apart:
a sub-package's table points into the sub-package itself (or into ``_utils``, the
bottom layer), so its public face never reaches a module higher up.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pickle
from pathlib import Path

import pytest

import spinecls
from spinecls._utils.moved import MOVED

PACKAGE = Path(spinecls.__file__).parent
# 58 entries before the sub-packages; what is left at the top is the package's own files
# (__init__, __main__, _version, py.typed), _utils, the sub-packages and the public modules
# (spinecls.calibration, spinecls.evaluation, ...), each of which must stay a real file so
# that its import path keeps working for users and for static type checkers alike.
MAX_TOP_LEVEL = 30


def _module_name(path: Path) -> str:
    parts = ["spinecls", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _known(name: str) -> str | None:
    """The spinecls module ``name`` names, or holds (``spinecls.x.NAME`` -> ``spinecls.x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _with_packages(module: str, importer: str) -> set[str]:
    """``module`` and the packages Python initialises on the way to it, less those
    ``importer`` is already inside (they are being initialised)."""
    parts = module.split(".")
    chain = {".".join(parts[:k]) for k in range(2, len(parts) + 1)}
    inside = {".".join(importer.split(".")[:k]) for k in range(1, importer.count(".") + 2)}
    return {m for m in chain - inside if m in MODULES}


def _under_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(module: str) -> set[str]:
    """The spinecls modules ``module`` imports (see the module docstring)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [f"{stem}.{alias.name}" for alias in node.names] or [stem]
        else:
            continue
        for name in names:
            target = _known(name)
            if target and target != module:
                found |= _with_packages(target, module)
    return found - {module}


GRAPH = {module: imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_relative_imports_packages_and_functions():
    assert "spinecls.labels" in GRAPH["spinecls.augment"]
    # a module inside a sub-package, through its package __init__
    assert {"spinecls.persistence", "spinecls.persistence._base"} <= GRAPH[
        "spinecls.classifier._net"
    ]
    # imports inside functions count (inference reads model files on demand)
    assert "spinecls.persistence" in GRAPH["spinecls.inference"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others():
    assert _cycles(GRAPH) == []


def _unit(module: str) -> str:
    """The top-level entry ``module`` belongs to; persistence counts as its two levels."""
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else "spinecls"
    if unit == "persistence":
        return "persistence (pipeline files)" if module.endswith("_pipeline_file") else unit
    return unit


def test_no_sub_package_imports_itself_through_others():
    units: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        here = _unit(module)
        units.setdefault(here, set()).update(_unit(m) for m in imported if _unit(m) != here)
    for imported in list(units.values()):
        for unit in imported:
            units.setdefault(unit, set())
    assert _cycles(units) == []
    # the two levels of persistence: the estimators below the pipeline files
    assert "persistence" in units["classifier"] and "persistence" in units["localization"]
    assert {"classifier", "localization"} <= units["persistence (pipeline files)"]
    assert not {"classifier", "localization"} & units["persistence"]


def test_the_lower_layers_import_nothing_higher():
    bottom = {"spinecls.labels", "spinecls._version", "spinecls._utils"}
    for module in MODULES:
        if module in bottom or module.startswith("spinecls._utils."):
            higher = {m for m in GRAPH[module] if m not in bottom}
            higher = {m for m in higher if not m.startswith("spinecls._utils.")}
            assert higher == set(), f"{module} imports {sorted(higher)}"


@pytest.mark.parametrize(
    "package", sorted(m for m in MODULES if MODULES[m].name == "__init__.py" and m != "spinecls")
)
def test_a_sub_package_resolves_its_lazy_names_inside_itself(package):
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    tables = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
    ]
    for table in tables:
        for where in ast.literal_eval(table).values():
            inside = where.startswith(".") and not where.startswith("..")
            assert inside or where.startswith(".._utils."), (
                f"{package}._LAZY resolves a name in {where}, outside the package"
            )


def test_the_top_level_shows_the_sub_systems():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL, entries
    private = [e for e in entries if e.startswith("_") and not e.startswith("__")]
    assert private == ["_utils", "_version.py"]
    for package in ("classifier", "localization", "metrics", "persistence", "preprocessing"):
        assert (PACKAGE / package / "__init__.py").is_file()


# What joblib files of fitted estimators written before the sub-packages name (read from
# files saved with version 0.1's layout): each must load as the class it was.
OLD_PICKLED = {
    "spinecls._net.DualHeadNet": "spinecls.classifier._net",
    "spinecls._net.HeadAccuracy": "spinecls.classifier._net",
    "spinecls._loss.DualHeadLoss": "spinecls.classifier._loss",
    "spinecls._meta.HeadClasses": "spinecls._utils.dual_head",
    "spinecls._accelerate.PrecisionNet": "spinecls._utils.accelerate",
    "spinecls._volumes.collate_stacks": "spinecls.localization._volumes",
    "spinecls.classifier.DualHeadClassifier": "spinecls.classifier._classifier",
    "spinecls.localization.LevelLocalizer": "spinecls.localization._localizer",
    "spinecls.preprocessing.LumbarPatchTransformer": "spinecls.preprocessing._transformer",
}


@pytest.mark.parametrize("old", sorted(OLD_PICKLED))
def test_a_pickle_naming_a_moved_module_loads(old):
    module, _, name = old.rpartition(".")
    found = pickle.loads(f"c{module}\n{name}\n.".encode())  # protocol 0: a global by name
    assert found is getattr(importlib.import_module(OLD_PICKLED[old]), name)


def test_every_moved_module_imports_under_its_old_name():
    for old, new in MOVED.items():
        assert old not in MODULES, f"{old} still exists beside {new}"
        module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__.name == module.__name__ == new  # still its own spec
    assert not importlib.util.find_spec("spinecls._no_such_module")


def test_no_module_imports_another_modules_private_name():
    """A name used across modules is public within its package: no ``from x import _y``,
    except a private module of the importer's own package (``from . import _net``)."""
    reaching = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if not (node.level or (node.module or "").startswith("spinecls")):
                continue  # scikit-learn's private names: tests/test_sklearn_private_api.py
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                own_module = node.level == 1 and not node.module and f"{package}.{name}" in MODULES
                if not own_module:
                    reaching.append(
                        f"{module}: from {'.' * node.level}{node.module or ''} import {name}"
                    )
    assert reaching == []
