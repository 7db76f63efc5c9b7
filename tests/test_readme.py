"""The README's configuration table and key table stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.keys import Keys
from sidecar.settings import markdown_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_config_table_is_generated_from_settings() -> None:
    block = README.split("<!-- config-table:start -->\n")[1].split("\n<!-- config-table:end -->")[0]
    assert block == markdown_table(), "regenerate with: python -m sidecar.settings"


def test_every_key_is_documented() -> None:
    keys = Keys("sidecar", "<project>")
    names = [
        keys.heartbeat,
        keys.services,
        keys.events,
        keys.project_info,
        keys.service("<svc>"),
        keys.hashes("<svc>"),
    ]
    for name in names:
        assert f"`{name}`" in README, f"{name} missing from the README's key table"
    documented = set(re.findall(r"`(sidecar:<project>:[^`]+)`", README))
    assert documented == set(names), "the README documents a key the code does not have"
