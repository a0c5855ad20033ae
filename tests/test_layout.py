"""The package's floors, checked from the source: steps side by side (never importing one
another), shared parts below them, a ground floor that imports nothing of the package, and
nothing that stores data importing the local launcher."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dropoutnet"
GROUND = ("errors", "config", "sql", "failpoints", "processes", "airflow_connection",
          "healthcheck")
SHARED = ("db", "artifacts", "registry", "vectors", "sample_data", "feature_queries",
          "features", "inputs", "training", "saved_models", "retrieval", "metrics",
          "baselines", "cf", "content", "locations")


def imports(path: Path) -> set[str]:
    """The ``dropoutnet`` modules a file imports (absolute names, top level and in functions)."""
    package = "dropoutnet." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    package = package.rstrip(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("dropoutnet"):
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dropoutnet"))
    return found


def modules_of(names: set[str]) -> set[str]:
    """The first-level modules (``dropoutnet.X``) of imported names that exist as modules."""
    out = set()
    for name in names:
        parts = name.split(".")
        if len(parts) >= 2 and ((PACKAGE / f"{parts[1]}.py").exists()
                                or (PACKAGE / parts[1]).is_dir()):
            out.add(".".join(parts[:2]) if parts[1] != "steps" else ".".join(parts[:3]))
    return out


def test_steps_never_import_another_step():
    steps = sorted((PACKAGE / "steps").glob("*.py"))
    assert {p.stem for p in steps} >= {"samples", "train", "export", "embeddings", "evaluate",
                                       "publish", "deploy", "retention"}
    for path in steps:
        used = {m for m in modules_of(imports(path)) if m.startswith("dropoutnet.steps.")}
        assert used <= {f"dropoutnet.steps.{path.stem}"}, (path.name, used)


def test_shared_parts_and_the_ground_floor_import_no_step():
    for name in GROUND + SHARED:
        used = modules_of(imports(PACKAGE / f"{name}.py"))
        assert not {m for m in used if m.startswith("dropoutnet.steps")}, (name, used)
        assert "dropoutnet.pipeline" not in used, name


def test_the_ground_floor_imports_nothing_above_it():
    for name in GROUND:
        used = modules_of(imports(PACKAGE / f"{name}.py")) - {"dropoutnet." + g for g in GROUND}
        assert not used, (name, used)


def test_nothing_that_stores_data_imports_the_local_launcher():
    for name in ("db", "artifacts", "registry", "vectors", "sample_data"):
        used = modules_of(imports(PACKAGE / f"{name}.py"))
        assert not used & {"dropoutnet.embedded_pg", "dropoutnet.stack"}, (name, used)
    service = modules_of(imports(PACKAGE / "serving" / "service.py"))
    assert "dropoutnet.stack" not in service  # processes and ports: dropoutnet.processes
