"""Render the configuration reference ``docs/config.md`` from :mod:`core.config`:
``python -m twotower.config_docs`` (``make docs``). A test fails when the file is stale.

Each key's description is the comment block directly above its field in ``config.py``,
so the reference and the code are one text.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing

from core import config as config_module
from core.config import Config

HEADER = """# Configuration reference

Generated from `core/config.py` by `python -m twotower.config_docs` (`make docs`); do not
edit by hand. The file is `twotower.toml` at the project root (or `--config FILE`, or
`$TWOTOWER_CONFIG`). Every key is optional; unknown keys and wrong types are errors naming
the key. Relative paths resolve against the config file's folder.

Environment overrides: `TWOTOWER_DATA_ROOT`, `TWOTOWER_ARTIFACT_ROOT`, `TWOTOWER_REPORTS_ROOT`,
`TWOTOWER_SPARK_MASTER`, and `TWOTOWER__<SECTION>__<KEY>=value` for any key (lists and
tables as JSON, e.g. `TWOTOWER__TRAINING__HIDDEN='[256, 128]'`).
"""


def _field_comments(cls: type) -> dict[str, str]:
    """Comment lines directly above each field of a dataclass, joined."""
    source = inspect.getsource(cls)
    lines = source.splitlines()
    tree = ast.parse(source)
    out: dict[str, str] = {}
    for node in tree.body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            comments = []
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                comments.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            out[node.target.id] = " ".join(comments)
    return out


def _type_name(tp: typing.Any) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__name__
    return text.replace("typing.", "").replace("pathlib.", "")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:  # pragma: no cover
        return ""
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value}`".replace("|", "\\|")


def render() -> str:
    parts = [HEADER]
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        doc = inspect.getdoc(cls) or ""
        parts.append(f"## `[{section.name}]`\n\n{doc}\n")
        parts.append("| key | type | default | description |\n| --- | --- | --- | --- |")
        comments = _field_comments(cls)
        field_hints = typing.get_type_hints(cls, vars(config_module))
        for f in dataclasses.fields(cls):
            tp = _type_name(field_hints[f.name]).replace("|", "\\|")
            parts.append(f"| `{f.name}` | {tp} | {_default(f)} | {comments.get(f.name, '')} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
