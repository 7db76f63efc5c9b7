"""The README's generated tables and key table stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.core.keys import Keys, TraefikKeys
from sidecar.docs import BLOCKS, blocks, render

README = (Path(__file__).parent.parent / "README.md").read_text()
REGENERATE = "regenerate with: .venv/bin/python -m sidecar.docs README.md"


def test_generated_tables_are_current() -> None:
    for name in BLOCKS:
        assert README.count(f"<!-- {name}:start -->") == 1, f"{name}: one start marker"
        assert README.count(f"<!-- {name}:end -->") == 1, f"{name}: one end marker"
    found = blocks(README)
    assert set(found) == set(BLOCKS), f"generated blocks missing: {set(BLOCKS) - set(found)}"
    for name, text in found.items():
        assert text.strip(), f"the generated {name} block is empty: {REGENERATE}"
    assert render(README) == README, REGENERATE


def test_render_fills_empty_and_stale_blocks() -> None:
    for name, make in BLOCKS.items():
        table = make()
        assert table.count("\n") >= 2, f"{name} has a header and rows"
        empty = f"before\n<!-- {name}:start -->\n<!-- {name}:end -->\nafter\n"
        filled = f"before\n<!-- {name}:start -->\n{table}\n<!-- {name}:end -->\nafter\n"
        stale = f"before\n<!-- {name}:start -->\n| old |\n<!-- {name}:end -->\nafter\n"
        assert render(empty) == filled
        assert render(stale) == filled
        assert render(filled) == filled
        assert blocks(filled)[name].strip() == table


def test_every_key_is_documented() -> None:
    keys = Keys("sidecar", "<project>")
    names = [
        keys.heartbeat,
        keys.sentinel,
        keys.services,
        keys.events,
        keys.project_info,
        keys.service("<svc>"),
        keys.hashes("<svc>"),
        keys.rotation("<svc>"),
        keys.instances("<svc>"),
        keys.commands,
        keys.result("<id>"),
        keys.desired("<svc>"),
        keys.paused,
        keys.synced("<svc>"),
        keys.sync_gens("<svc>"),
        keys.versions("<svc>"),
        keys.version("<svc>"),
        keys.git,
        keys.delivery("<host>", "<id>"),
        keys.drift,
    ]
    assert f"`{keys.hub}`" in README, "the hub stream (shared by projects) is documented"
    assert f"`{keys.image_hub}`" in README
    for name in names:
        assert f"`{name}`" in README, f"{name} missing from the README's key table"
    documented = set(re.findall(r"`(sidecar:<project>:[^`]+)`", README))
    assert documented == set(names), "the README documents a key the code does not have"
    traefik = TraefikKeys("traefik", "<project>")
    assert f"`{traefik.router('<svc>')}/rule`" in README
    assert f"`{traefik.server_url('<svc>', 0).replace('/0/', '/<i>/')}`" in README
    assert f"`{traefik.retry_attempts('<svc>')}`" in README
    assert traefik.retry_initial_interval("<svc>").endswith("/retry/initialInterval")
    assert "`.../retry/initialInterval`" in README
    assert traefik.router_middleware("<svc>", 0).startswith(traefik.router("<svc>") + "/")
    assert "`.../middlewares/0`" in README
    assert f"`{traefik.dial_timeout('<svc>')}`" in README
    assert traefik.lb_servers_transport("<svc>").endswith("/loadbalancer/serversTransport")
    assert "`.../loadbalancer/serversTransport`" in README
