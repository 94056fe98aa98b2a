"""Every config section and key, drawn from `pinsage/config.py` (``python -m
tests.config_reference``).

docs/design.md holds the output and `tests/test_docs.py` checks that it is current:
a key added to a config dataclass shows up in the docs, with the comments written
beside it in the code, or the tests fail.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from pinsage.config import PipelineConfig

SOURCE = Path(__file__).resolve().parents[1] / "pinsage" / "config.py"


def _comments(lines: list[str], node: ast.AnnAssign) -> str:
    """The comment lines just above a field and the one at its end, joined."""
    above: list[str] = []
    row = node.lineno - 2
    while row >= 0 and lines[row].strip().startswith("#"):
        above.insert(0, lines[row].strip().lstrip("#").strip())
        row -= 1
    line = lines[node.end_lineno - 1]
    trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
    return " ".join([*above, trailing]).strip().replace("|", "/")


def _field_notes() -> dict[str, dict[str, str]]:
    """class name -> field name -> its comments."""
    lines = SOURCE.read_text().splitlines()
    notes: dict[str, dict[str, str]] = {}
    for node in ast.parse(SOURCE.read_text()).body:
        if isinstance(node, ast.ClassDef):
            notes[node.name] = {
                item.target.id: _comments(lines, item)
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            }
    return notes


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    return repr(f.default_factory())  # type: ignore[misc]


def reference() -> str:
    """One markdown table per section of `PipelineConfig`, keys in code order."""
    notes = _field_notes()
    out: list[str] = []
    for section in dataclasses.fields(PipelineConfig):
        cls = section.default_factory  # type: ignore[misc]
        out += [f"### `{section.name}`", "", cls.__doc__.splitlines()[0], ""]
        out += ["| key | default | what |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            what = notes[cls.__name__].get(f.name, "")
            out.append(f"| `{section.name}.{f.name}` | `{_default(f)}` | {what} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
