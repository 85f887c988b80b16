"""README's settings table is the settings classes' own, and every setting is documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_holds_the_table_the_settings_classes_render() -> None:
    generator = _generator()
    readme = (ROOT / "README.md").read_text()
    rendered = generator.table()
    assert generator.replace_in(readme, rendered) == readme, (
        "README.md's settings table is stale: run `python scripts/settings_table.py --write`"
    )


def test_every_setting_has_a_description() -> None:
    rendered = _generator().table()
    undocumented = [
        line.split("|")[1].strip()
        for line in rendered.splitlines()[2:]
        if not line.rstrip(" |").split("|")[-1].strip()
    ]
    assert undocumented == []


def test_a_field_takes_the_comment_above_it_or_its_group() -> None:
    source = """
class S:
    # first
    a: int = 1
    b: int = 2  # own

    c: int = 3
    # group
    d: int = 4
    e: int = 5
"""
    docs = _generator().comments_by_field(source, "S")
    assert docs == {"a": "first", "b": "own", "c": "", "d": "group", "e": "group"}
