"""The README's generated tables and key table stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.core.keys import Keys, TraefikKeys
from sidecar.docs import render

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_generated_tables_are_current() -> None:
    assert "<!-- config-table:start -->" in README
    assert "<!-- serving-table:start -->" in README
    assert render(README) == README, "regenerate with: python -m sidecar.docs README.md"


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
    ]
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
