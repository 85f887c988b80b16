"""The package's layers: the import contracts hold, they catch a wrong-way import, and no
module of `learnflow` takes part in an import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_tree(dest: Path) -> Path:
    for name in ("learnflow", "gateway"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_contracts_are_kept(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_query_importing_a_command_handler_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    catalog = tree / "learnflow" / "queries" / "catalog.py"
    catalog.write_text(catalog.read_text() + "\nfrom learnflow.commands import courses  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "learnflow.queries.catalog -> learnflow.commands.courses" in result.stdout


def test_no_import_cycles_inside_learnflow() -> None:
    graph = grimp.build_graph("learnflow", cache_dir=None)
    cycles: list[str] = []
    edges = 0
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            edges += 1
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert edges > 100  # the graph was really built
    assert cycles == []
