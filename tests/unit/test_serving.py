"""x-sidecar / sidecar.* labels -> ServeSpec: the retry middleware setting, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.core.serving import RetrySpec, ServeError, parse_serve, push_target

BASE: dict[str, Any] = {"port": 8080}


@pytest.mark.parametrize(
    ("svc", "attempts", "interval"),
    [
        ({"x-sidecar": BASE}, 2, None),  # default: one retry, at once
        ({"x-sidecar": {**BASE, "retry": {}}}, 2, None),
        ({"x-sidecar": {**BASE, "retry": {"attempts": 3}}}, 3, None),
        ({"x-sidecar": {**BASE, "retry": {"attempts": 0}}}, 0, None),  # disabled
        ({"x-sidecar": {**BASE, "retry": {"attempts": 1}}}, 1, None),
        ({"x-sidecar": {**BASE, "retry": {"attempts": 10}}}, 10, None),
        ({"x-sidecar": {**BASE, "retry": {"initial_interval": 0.1}}}, 2, 0.1),
        ({"x-sidecar": {**BASE, "retry": {"attempts": 4, "initial_interval": 0}}}, 4, 0.0),
        ({"labels": {"sidecar.port": "8080", "sidecar.retry.attempts": "3"}}, 3, None),
        ({"labels": {"sidecar.port": "8080", "sidecar.retry.attempts": "0"}}, 0, None),
        (
            {"labels": {"sidecar.port": "8080", "sidecar.retry.initial_interval": "0.25"}},
            2,
            0.25,
        ),
        ({"labels": ["sidecar.port=8080", "sidecar.retry.attempts=5"]}, 5, None),
    ],
)
def test_retry_is_parsed(svc: dict[str, Any], attempts: int, interval: float | None) -> None:
    spec = parse_serve("web", svc)
    assert spec is not None
    assert spec.retry == RetrySpec(attempts=attempts, initial_interval=interval)
    assert spec.retry.enabled is (attempts > 0)


@pytest.mark.parametrize(
    ("svc", "dial"),
    [
        ({"x-sidecar": BASE}, 0.5),
        ({"x-sidecar": {**BASE, "retry": {"dial_timeout": 0.2}}}, 0.2),
        ({"x-sidecar": {**BASE, "retry": {"dial_timeout": 30}}}, 30.0),
        ({"labels": {"sidecar.port": "8080", "sidecar.retry.dial_timeout": "1.5"}}, 1.5),
    ],
)
def test_dial_timeout_is_parsed(svc: dict[str, Any], dial: float) -> None:
    spec = parse_serve("web", svc)
    assert spec is not None
    assert spec.retry.dial_timeout == dial


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"dial_timeout": 0}, "retry.dial_timeout"),
        ({"dial_timeout": -1}, "retry.dial_timeout"),
        ({"dial_timeout": 31}, "retry.dial_timeout"),
        ({"attempts": -1}, "retry.attempts"),
        ({"attempts": 11}, "retry.attempts"),
        ({"attempts": "two"}, "retry.attempts"),
        ({"attempts": 1.5}, "retry.attempts"),
        ({"initial_interval": -0.1}, "retry.initial_interval"),
        ({"initial_interval": 61}, "retry.initial_interval"),
        ({"initial_interval": "100ms"}, "retry.initial_interval"),
        ({"tries": 2}, "retry.tries"),  # unknown field
        (3, "retry"),  # must be a mapping
    ],
)
def test_invalid_retry_names_the_field(retry: Any, field: str) -> None:
    with pytest.raises(ServeError) as err:
        parse_serve("web", {"x-sidecar": {**BASE, "retry": retry}})
    assert str(err.value).startswith("service web: invalid x-sidecar: ")
    assert f"{field}:" in str(err.value)


def test_invalid_retry_label_names_the_field() -> None:
    svc = {"labels": {"sidecar.port": "8080", "sidecar.retry.attempts": "-2"}}
    with pytest.raises(ServeError, match=r"retry\.attempts:"):
        parse_serve("web", svc)


def test_retry_does_not_make_a_service_served() -> None:
    assert parse_serve("web", {"labels": {"traefik.enable": "true"}}) is None


@pytest.mark.parametrize(
    ("x", "target", "served"),
    [
        ({"push": "127.0.0.1:5000/web"}, "127.0.0.1:5000/web", False),  # pushed, not served
        ({"push": "ghcr.io/acme/web:main", "port": 80}, "ghcr.io/acme/web:main", True),
        ({"port": 80}, None, True),
        ({"push": ""}, None, False),
    ],
)
def test_push_is_where_each_build_goes_and_serves_nothing_by_itself(
    x: dict[str, Any], target: str | None, served: bool
) -> None:
    svc = {"x-sidecar": x}
    assert push_target("web", svc) == target
    assert (parse_serve("web", svc) is not None) is served


@pytest.mark.parametrize(
    "bad", ["web", "Registry:5000/Web", "127.0.0.1:5000/web@sha256:" + "a" * 64, 5, "a b/c"]
)
def test_a_push_target_that_is_no_repository_is_refused(bad: Any) -> None:
    with pytest.raises(ServeError, match="push"):
        push_target("web", {"x-sidecar": {"push": bad}})


def test_an_empty_x_sidecar_is_still_an_error() -> None:
    with pytest.raises(ServeError, match="port"):
        parse_serve("web", {"x-sidecar": {}})
