"""Generated README tables (settings, x-sidecar fields), so the docs cannot drift from the code.

`python -m sidecar.docs README.md` rewrites the marked blocks in place; a test checks that
the README is up to date."""

from __future__ import annotations

import re
import sys
from functools import partial
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from sidecar.core.serving import HealthSpec, RetrySpec, RolloutSpec, ServeSpec
from sidecar.settings import Settings


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        return {"workspace": "current directory"}.get(name, "(empty)")
    value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value in ((), ""):
        return "(empty)"
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    rows = ["| setting | env / flag | default | group | meaning |", "|---|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        env = f"`SIDECAR_{name.upper()}` / `--{name.replace('_', '-')}`"
        rows.append(
            f"| {name} | {env} | {_default(name, field)} | {extra.get('group', '')} | "
            f"{_cell(field.description)} |"
        )
    return "\n".join(rows)


def _model_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if name in ("health", "rollout", "retry"):
            continue
        default = "required" if field.is_required() else _default(name, field)
        rows.append(f"| `{prefix}{name}` | {default} | {_cell(field.description)} |")
    return rows


def serving_table() -> str:
    rows = ["| field | default | meaning |", "|---|---|---|"]
    rows += _model_rows(ServeSpec, "")
    rows += _model_rows(HealthSpec, "health.")
    rows += _model_rows(RolloutSpec, "rollout.")
    rows += _model_rows(RetrySpec, "retry.")
    return "\n".join(rows)


def _fill(table: str, match: re.Match[str]) -> str:
    return match.group(1) + table + "\n" + match.group(3)


BLOCKS = {"config-table": settings_table, "serving-table": serving_table}


def block_pattern(name: str) -> re.Pattern[str]:
    """A generated block: its start marker line, what is between (possibly nothing), and its
    end marker line. An empty block (the end marker right after the start) matches too."""
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(?<=\n)(<!-- {name}:end -->)", re.S)


def blocks(readme: str) -> dict[str, str]:
    """The current text of each generated block (without its markers); absent when missing."""
    found = {}
    for name in BLOCKS:
        match = block_pattern(name).search(readme)
        if match:
            found[name] = match.group(2)
    return found


def render(readme: str) -> str:
    for name, make in BLOCKS.items():
        readme = block_pattern(name).sub(partial(_fill, make()), readme)
    return readme


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render(path.read_text()))
