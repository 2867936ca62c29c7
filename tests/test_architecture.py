"""The dependency rules of DESIGN.md, enforced with import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed; run `make setup`"
    proc = subprocess.run([exe], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: " in proc.stdout and " broken" in proc.stdout and "0 broken" in proc.stdout


def test_every_package_module_imports() -> None:
    """A module that cannot even be imported is a defect the other tests might not reach."""
    import importlib
    import pkgutil

    failures = []
    for pkg_name in ("harness", "models", "eval_protocols", "dashboards"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}."):
            if ".migrations" in info.name or info.name.startswith("dashboards.pages") or info.name == "dashboards.app":
                continue  # alembic env and Streamlit scripts run only inside their hosts
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # noqa: BLE001 - collect every failure
                failures.append(f"{info.name}: {exc!r}")
    assert not failures, "\n".join(failures)


SQL_PACKAGES = {"sqlalchemy", "alembic", "psycopg", "psycopg2", "sqlite3"}


def test_only_harness_storage_issues_sql() -> None:
    """Rule 5 of DESIGN.md: no module outside harness/storage imports an SQL library (direct imports, by AST)."""
    import ast

    offenders = []
    for pkg in ("harness", "models", "eval_protocols", "dashboards"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path.is_relative_to(ROOT / "harness" / "storage"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in SQL_PACKAGES]
    assert not offenders, offenders


PACKAGES = ("harness", "models", "eval_protocols", "dashboards")


def _module_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports, at module level or inside functions (AST walk;
    imports under ``if TYPE_CHECKING:`` excluded; a module's imports of its own package or sub-packages ignored)."""
    import ast

    files = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(n) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body for n in ast.walk(stmt)
        }
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                found = resolve(name)
                if found and found != module and not module.startswith(found + ".") and not (
                    path.name == "__init__.py" and found.startswith(module + ".")
                ):
                    targets.add(found)
        graph[module] = targets
    return graph


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    """DESIGN.md rule 6: no two first-party modules import each other, directly or through others."""
    graph = _module_graph()
    cycles = []
    for start in sorted(graph):
        # depth-first search for a path back to `start` through modules that sort after it (each cycle once)
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt > start and nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:20])


def test_harness_keeps_its_stages_in_sub_packages() -> None:
    """The pipeline's stages are sub-packages of harness/; the top level holds at most 14 modules (CLI, config,
    errors, paths, provenance, distributed, faults, prompts, rundir, pipeline ...)."""
    top = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert len(top) <= 14, top
    for stage in ("generate", "score", "study", "simulate", "analyze", "report", "regress", "storage", "commands"):
        assert (ROOT / "harness" / stage / "__init__.py").is_file(), stage
