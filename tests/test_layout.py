"""The package's layout, checked from the source on transitive imports.

A room is a source file of the package, ``dags/``, ``plugins/`` or ``bench/``; an arrow is an
import, wherever it stands (at the top of a module or inside a function: a lazy import is an
import all the same).  An import through a package's face (an ``__init__.py`` that only hands
names on) is an arrow to the module that defines the name.  A floor is a room above everything
it imports, the ground being floor 1.  The rules:

* no circles, and at most :data:`MAX_FLOORS` floors;
* the package root holds entry points only (:data:`ENTRY_POINTS`), every other module lives in
  the subpackage of its concept;
* steps stand side by side (never one importing another), and nothing below them reaches up
  to a step, the pipeline or the command line;
* the model never reaches the evaluation, nothing but the entry points reaches the local
  launcher, and only the DAG, the plugin and the one module that reads Airflow's connection
  import Airflow;
* every public function, class and method of the package says what it does (a docstring).

Run this file as a script to print the rooms, floors and circles it counts.
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dropoutnet"
MAX_FLOORS = 9
ENTRY_POINTS = {"__init__", "cli", "pipeline", "airflow_connection", "airflow_worker",
                "healthcheck"}
CONCEPTS = {"benchmarks", "config", "console", "core", "data", "evaluation", "local", "model",
            "online", "recall", "registry", "serving", "steps", "stream", "training"}
# the modules every step may stand on, and the ones that stand above the steps
ABOVE_STEPS = ("dropoutnet.pipeline", "dropoutnet.cli", "dropoutnet.benchmarks",
               "dropoutnet.local")


def rooms() -> dict[str, Path]:
    """Every room by dotted name: ``dropoutnet.core.db``, ``dags.dropoutnet_daily``, ..."""
    found = {}
    for top in ("dropoutnet", "dags", "plugins", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts)] = path
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@lru_cache(maxsize=None)
def _face_names(name: str) -> dict[str, str] | None:
    """For a package face (an ``__init__`` that defines nothing and only imports), which module
    each name it hands on comes from; None for any other module."""
    path = rooms().get(name)
    if path is None or path.name != "__init__.py":
        return None
    handed: dict[str, str] = {}
    for node in _tree(path).body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            handed.update({a.asname or a.name: node.module for a in node.names})
        elif isinstance(node, ast.Import) or (isinstance(node, ast.Expr)
                                              and isinstance(node.value, ast.Constant)):
            continue
        else:
            return None
    return handed


def _target(module: str, name: str | None, known: dict[str, Path]) -> str | None:
    """The room an import of ``name`` from ``module`` reaches (None outside the house)."""
    if name and f"{module}.{name}" in known:
        return f"{module}.{name}"
    if module not in known:
        return None
    face = _face_names(module)
    if face is not None and name in face:
        return _target(face[name], name, known) or face[name]
    return module


def imports(name: str) -> set[str]:
    """The rooms ``name`` imports directly, top level and inside functions."""
    known = rooms()
    path = known[name]
    package = _package_of(name, path)
    out: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if path.parent.name == "bench" and module in {n.split(".")[-1] for n in known}:
                module = f"bench.{module}"  # a bench script imports its neighbours by name
            for alias in node.names:
                target = _target(module, alias.name, known)
                if target:
                    out.add(target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    out.add(alias.name)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    """Every room and the rooms it imports."""
    return {name: imports(name) for name in rooms()}


def reach(start: str, arrows: dict[str, set[str]]) -> set[str]:
    """Every room ``start`` imports, directly or through others."""
    seen, todo = set(), list(arrows[start])
    while todo:
        room = todo.pop()
        if room not in seen:
            seen.add(room)
            todo.extend(arrows.get(room, ()))
    return seen


def circles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """The groups of rooms that import each other in a loop (Tarjan's strongly connected
    components of more than one room)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(room: str) -> None:
        index[room] = low[room] = len(index)
        stack.append(room)
        for nxt in arrows[room]:
            if nxt not in index:
                visit(nxt)
                low[room] = min(low[room], low[nxt])
            elif nxt in stack:
                low[room] = min(low[room], index[nxt])
        if low[room] == index[room]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == room:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for room in sorted(arrows):
        if room not in index:
            visit(room)
    return found


def floors(arrows: dict[str, set[str]]) -> dict[str, int]:
    """Each room's floor: 1 for a room that imports nothing of the house, else one above the
    highest room it imports (the graph has no circle when this is asked)."""
    out: dict[str, int] = {}

    def floor(room: str) -> int:
        if room not in out:
            out[room] = 1 + max((floor(n) for n in arrows[room]), default=0)
        return out[room]

    for room in arrows:
        floor(room)
    return out


def imports_airflow(path: Path) -> bool:
    """Whether a file imports Airflow anywhere in it."""
    for node in ast.walk(_tree(path)):
        names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        if any(n == "airflow" or n.startswith("airflow.") for n in names):
            return True
    return False


# --- the rules -------------------------------------------------------------------------------


def test_no_circles_and_few_floors():
    arrows = graph()
    assert circles(arrows) == []
    levels = floors(arrows)
    assert max(levels.values()) <= MAX_FLOORS, sorted(levels.items(), key=lambda kv: -kv[1])[:5]


def test_the_package_root_holds_entry_points_only():
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root == ENTRY_POINTS
    concepts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert concepts == CONCEPTS
    # sql_templates/ mirrors the package: one folder per concept, nothing loose at its root
    templates = ROOT / "sql_templates"
    assert not [p.name for p in templates.iterdir() if p.is_file()]
    assert {p.name for p in templates.iterdir() if p.is_dir()} <= CONCEPTS


def test_steps_stand_side_by_side_below_the_entry_points():
    arrows = graph()
    steps = {n for n in arrows if n.startswith("dropoutnet.steps.") and not n.endswith("__init__")}
    assert {s.rsplit(".", 1)[1] for s in steps} >= {
        "samples", "train", "export", "embeddings", "evaluate", "publish", "deploy", "retention"}
    for step in steps:
        assert not arrows[step] & (steps - {step}), step
    for room in arrows:
        if room.startswith("dropoutnet.") and not room.startswith(
                ABOVE_STEPS + ("dropoutnet.steps",)):
            above = {r for r in reach(room, arrows) if r.startswith(ABOVE_STEPS + (
                "dropoutnet.steps.",))}
            assert not above, (room, above)


def test_forbidden_reaches():
    arrows = graph()
    for room in arrows:
        reached = reach(room, arrows)
        if room.startswith("dropoutnet.model."):
            assert not {r for r in reached if r.startswith("dropoutnet.evaluation")}, room
        if room.startswith("dropoutnet.") and room.rsplit(".", 1)[-1] not in ENTRY_POINTS \
                and not room.startswith("dropoutnet.local."):
            assert not {r for r in reached if r.startswith("dropoutnet.local.")}, room
    for name, path in rooms().items():
        allowed = name.startswith(("dags.", "plugins.")) or name == "dropoutnet.airflow_connection"
        assert allowed or not imports_airflow(path), name


def _undocumented(path: Path) -> list[str]:
    missing = []

    def walk(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name.startswith("_"):
                    continue
                if not ast.get_docstring(node) and not _overrides(node):
                    missing.append(f"{prefix}{node.name}")
                if isinstance(node, ast.ClassDef):
                    walk(node.body, f"{prefix}{node.name}.")

    walk(_tree(path).body, "")
    return missing


def _overrides(node: ast.AST) -> bool:
    """A method a framework calls by its name (a Keras layer's ``call``, a pydantic
    validator): its class says what it does."""
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
        node.name in {"call", "build", "get_config", "compute_output_shape", "readable",
                      "readinto", "model_post_init", "train_step", "test_step", "metrics",
                      "update_step", "on_epoch_begin", "on_epoch_end", "on_train_batch_end"}
        or any(isinstance(d, ast.Call) and getattr(d.func, "id", "") in {
            "field_validator", "model_validator"} for d in node.decorator_list)
        or any(getattr(d, "id", getattr(d, "attr", "")) in {"property", "classmethod",
                                                              "staticmethod", "override"}
               and node.name.startswith("_") for d in node.decorator_list))


def test_every_public_function_and_class_has_a_docstring():
    missing = {str(p.relative_to(ROOT)): names for p in sorted(PACKAGE.rglob("*.py"))
               if (names := _undocumented(p))}
    assert missing == {}


if __name__ == "__main__":
    house = graph()
    loops = circles(house)
    print(f"rooms {len(house)}, arrows {sum(map(len, house.values()))}, circles {len(loops)}")
    for loop in loops:
        print("  circle:", " <-> ".join(loop))
    if not loops:
        levels = floors(house)
        print(f"floors {max(levels.values())}")
        for room, level in sorted(levels.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {level:2d}  {room}")
