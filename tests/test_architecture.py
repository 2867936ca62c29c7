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
