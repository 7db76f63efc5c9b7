"""Every Redis key lives under `<prefix>:<project>:`."""

from __future__ import annotations

import inspect
from fnmatch import fnmatchcase

import pytest

from sidecar.core.keys import Keys, TraefikKeys

PAIRS = [("sidecar", "shop"), ("sc", "my-project"), ("test-1234", "p"), ("sidecar", "a_b.c")]


def all_keys(keys: Keys, service: str = "web") -> dict[str, str]:
    """Every key the class can produce (new properties/methods are picked up automatically)."""
    out: dict[str, str] = {}
    for name, attr in vars(Keys).items():
        if name.startswith("_") or name in ("base", "pattern", "hub", "image_hub"):
            continue
        if isinstance(attr, property):
            out[name] = getattr(keys, name)
        elif inspect.isfunction(attr):
            params = list(inspect.signature(attr).parameters)[1:]
            out[name] = getattr(keys, name)(*[service] * len(params))
    return out


def test_every_known_key_is_enumerated() -> None:
    names = set(all_keys(Keys("p", "q")))
    assert {"heartbeat", "services", "service", "hashes", "events", "project_info"} <= names


@pytest.mark.parametrize(("prefix", "project"), PAIRS)
def test_every_key_starts_with_prefix_and_project(prefix: str, project: str) -> None:
    keys = Keys(prefix, project)
    assert keys.base == f"{prefix}:{project}"
    for name, key in all_keys(keys).items():
        assert key.startswith(f"{prefix}:{project}:"), name
        assert len(key) > len(f"{prefix}:{project}:"), name


@pytest.mark.parametrize(("prefix", "project"), PAIRS)
def test_pattern_matches_every_key(prefix: str, project: str) -> None:
    keys = Keys(prefix, project)
    assert keys.pattern() == f"{prefix}:{project}:*"
    for key in all_keys(keys).values():
        assert fnmatchcase(key, keys.pattern())


def test_keys_are_distinct() -> None:
    keys = Keys("sidecar", "shop")
    values = list(all_keys(keys).values())
    assert len(values) == len(set(values))


def test_per_service_keys_name_the_service() -> None:
    keys = Keys("sidecar", "shop")
    assert keys.service("web") == "sidecar:shop:service:web"
    assert keys.hashes("web") == "sidecar:shop:hashes:web"
    assert keys.service("web") != keys.service("api")
    assert keys.hashes("web") != keys.service("web")


def test_projects_do_not_see_each_other() -> None:
    shop, shop2 = Keys("sidecar", "shop"), Keys("sidecar", "shop2")
    for key in all_keys(shop2).values():
        assert not fnmatchcase(key, shop.pattern())
    for key in all_keys(shop).values():
        assert not fnmatchcase(key, shop2.pattern())


def test_the_hub_is_shared_by_every_project_under_the_prefix() -> None:
    """One public endpoint serves many sidecars: the pushes stream is not per project."""
    assert Keys("sidecar", "shop").hub == Keys("sidecar", "blog").hub == "sidecar:hub:pushes"
    assert Keys("other", "shop").hub != Keys("sidecar", "shop").hub
    assert not fnmatchcase(Keys("sidecar", "shop").hub, Keys("sidecar", "shop").pattern())


def test_traefik_retry_keys_follow_the_provider_layout() -> None:
    t = TraefikKeys("traefik", "shop")
    assert t.retry_attempts("web") == "traefik/http/middlewares/shop-web/retry/attempts"
    assert t.retry_initial_interval("web") == (
        "traefik/http/middlewares/shop-web/retry/initialInterval"
    )
    assert t.router_middleware("web", 0) == "traefik/http/routers/shop-web/middlewares/0"
    assert t.dial_timeout("web") == (
        "traefik/http/serversTransports/shop-web/forwardingTimeouts/dialTimeout"
    )
    assert t.lb_servers_transport("web") == (
        "traefik/http/services/shop-web/loadbalancer/serversTransport"
    )
    # the router names the middleware by the same name as itself and its service
    assert t.middleware("web").rsplit("/", 1)[1] == t.name("web")
