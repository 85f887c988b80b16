"""Renders the README's table of settings from the settings classes themselves: every field of
`learnflow.settings.Settings` (LEARNFLOW_*) and `gateway.settings.Settings`
(LEARNFLOW_GATEWAY_*), with its default, its format and the comment written above it (a
comment covers the fields that follow it up to the next comment or blank line).

    python scripts/settings_table.py           # print the table
    python scripts/settings_table.py --write   # replace it in README.md

tests/unit/test_settings_table.py fails when README.md's table differs from this rendering,
or when a setting has no comment.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- settings:begin (scripts/settings_table.py --write) -->"
END = "<!-- settings:end -->"


def comments_by_field(source: str, class_name: str) -> dict[str, str]:
    """The comment that documents each annotated field of `class_name`."""
    lines = source.splitlines()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    docs: dict[str, str] = {}
    current = ""
    previous_end = cls.lineno  # 0-based index of the line after `class ...:`
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 2  # 0-based index of the line above
        while row >= previous_end and lines[row].strip().startswith("#"):
            above.insert(0, lines[row].strip().lstrip("#").strip())
            row -= 1
        blank_before = row >= previous_end and not lines[row].strip()
        inline = lines[node.lineno - 1].partition("  #")[2].strip()
        if above:
            current = " ".join(above)
        elif blank_before:
            current = ""
        docs[node.target.id] = inline or current
        previous_end = node.end_lineno or node.lineno
    return docs


def _format(kind: Any) -> str:
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if kind is Path:
        return "path"
    if typing.get_origin(kind) is tuple:
        return "comma-separated list"
    return "text"


def _default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, Path):
        try:
            return str(value.relative_to(ROOT))
        except ValueError:
            return str(value)
    if value == "":
        return "(none)"
    return str(value)


def rows(settings_cls: Any, prefix: str, source: Path) -> list[tuple[str, str, str, str]]:
    docs = comments_by_field(source.read_text(), settings_cls.__name__)
    types = typing.get_type_hints(settings_cls)
    out = []
    for field in dataclasses.fields(settings_cls):
        default = getattr(settings_cls(), field.name)
        out.append(
            (
                f"`{prefix}{field.name.upper()}`",
                f"`{_default(default)}`",
                _format(types[field.name]),
                docs.get(field.name, ""),
            )
        )
    return out


def table() -> str:
    sys.path.insert(0, str(ROOT))
    from gateway.settings import Settings as GatewaySettings
    from learnflow.settings import Settings

    lines = ["| variable | default | format | what |", "|---|---|---|---|"]
    for name, default, kind, doc in [
        *rows(Settings, "LEARNFLOW_", ROOT / "learnflow" / "settings.py"),
        *rows(GatewaySettings, "LEARNFLOW_GATEWAY_", ROOT / "gateway" / "settings.py"),
    ]:
        escaped = doc.replace("|", "\\|")
        lines.append(f"| {name} | {default} | {kind} | {escaped} |")
    return "\n".join(lines)


def replace_in(readme: str, rendered: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


def main() -> None:
    rendered = table()
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        readme.write_text(replace_in(readme.read_text(), rendered))
    else:
        print(rendered)


if __name__ == "__main__":
    main()
