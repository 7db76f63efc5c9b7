"""Settings from SIDECAR_* environment variables, and URL redaction."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar.core.ignore import DEFAULT_IGNORES
from sidecar.settings import Settings, redact_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SIDECAR_* from the outer environment, and a known current directory."""
    for name in list(os.environ):
        if name.upper().startswith("SIDECAR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def test_defaults(tmp_path: Path) -> None:
    s = Settings()
    assert s.workspace == tmp_path
    assert s.compose_files == []
    assert s.profiles == []
    assert s.ignore == []
    assert s.project_name is None
    assert s.key_prefix == "sidecar"
    assert s.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert s.log_level == "INFO"
    assert s.log_json is False
    assert s.ignore_patterns == DEFAULT_IGNORES
    assert s.build_concurrency >= 1
    assert 0 < s.debounce_ms <= s.debounce_max_ms


def test_reads_sidecar_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SIDECAR_WORKSPACE": "/srv/ws",
        "SIDECAR_PROJECT_NAME": "shop",
        "SIDECAR_KEY_PREFIX": "sc",
        "SIDECAR_DEBOUNCE_MS": "75",
        "SIDECAR_DEBOUNCE_MAX_MS": "3000",
        "SIDECAR_BUILD_CONCURRENCY": "4",
        "SIDECAR_BUILD_TIMEOUT_S": "12.5",
        "SIDECAR_LOG_JSON": "true",
        "SIDECAR_EVENTS_MAXLEN": "500",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.workspace == Path("/srv/ws")
    assert s.project_name == "shop"
    assert s.key_prefix == "sc"
    assert s.debounce_ms == 75
    assert s.debounce_max_ms == 3000
    assert s.build_concurrency == 4
    assert s.build_timeout_s == 12.5
    assert s.log_json is True
    assert s.events_maxlen == 500


def test_unprefixed_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PREFIX", "nope")
    monkeypatch.setenv("LOG_LEVEL", "nope")
    s = Settings()
    assert s.key_prefix == "sidecar"
    assert s.log_level == "INFO"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("compose.yaml", ["compose.yaml"]),
        ("a.yml,b.yml", ["a.yml", "b.yml"]),
        (" a.yml , b.yml ,, ", ["a.yml", "b.yml"]),
        ("", []),
        (",", []),
    ],
)
@pytest.mark.parametrize("field", ["compose_files", "profiles", "ignore"])
def test_comma_separated_lists(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv(f"SIDECAR_{field.upper()}", raw)
    assert getattr(Settings(), field) == expected


def test_extra_ignores_are_appended_to_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_IGNORE", "*.log,tmp/")
    assert Settings().ignore_patterns == (*DEFAULT_IGNORES, "*.log", "tmp/")


def test_lists_accept_python_lists_too() -> None:
    s = Settings(compose_files=["a.yml", "b.yml"], profiles=["dev"])
    assert s.compose_files == ["a.yml", "b.yml"]
    assert s.profiles == ["dev"]


def test_resolved_compose_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIDECAR_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("SIDECAR_COMPOSE_FILES", "compose.yaml,sub/../override.yml")
    assert Settings().resolved_compose_files() == [
        str(tmp_path / "compose.yaml"),
        str(tmp_path / "override.yml"),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), ("error", "ERROR")],
)
def test_log_level_is_normalised(monkeypatch: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    monkeypatch.setenv("SIDECAR_LOG_LEVEL", raw)
    assert Settings().log_level == expected


@pytest.mark.parametrize("raw", ["verbose", "", "INF", "5"])
def test_invalid_log_level_is_rejected(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SIDECAR_LOG_LEVEL", raw)
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIDECAR_DEBOUNCE_MS", "-1"),
        ("SIDECAR_DEBOUNCE_MS", "soon"),
        ("SIDECAR_BUILD_CONCURRENCY", "0"),
        ("SIDECAR_BUILD_CONCURRENCY", "65"),
        ("SIDECAR_BUILD_TIMEOUT_S", "0"),
        ("SIDECAR_EVENTS_MAXLEN", "5"),
        ("SIDECAR_HEARTBEAT_TTL_S", "-2"),
        ("SIDECAR_LOG_JSON", "maybe"),
    ],
)
def test_out_of_range_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_redis_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_REDIS_URL", "redis://u:hunter2pw@h:6379/0")
    s = Settings()
    assert s.redis_url.get_secret_value() == "redis://u:hunter2pw@h:6379/0"
    assert "hunter2pw" not in repr(s)
    assert "hunter2pw" not in str(s)
    assert "hunter2pw" not in str(s.redis_url)


# ---- redact_url ------------------------------------------------------------------------------

SECRET = "s3cr3tPW"

REDACT_CASES: list[tuple[str, str]] = [
    (f"redis://u:{SECRET}@h:6379/0", "redis://u:***@h:6379/0"),
    (
        f"redis://default:{SECRET}@redis.internal:6380/2",
        "redis://default:***@redis.internal:6380/2",
    ),
    (f"rediss://:{SECRET}@h", "rediss://***@h"),
    (f"rediss://:{SECRET}@h:6380/0", "rediss://***@h:6380/0"),
    (f"redis://{SECRET}@h", "redis://***@h"),
    # `@` and `:` inside the password
    (f"redis://u:{SECRET}@x:y@h:6379", "redis://u:***@h:6379"),
    (f"unix://:{SECRET}@/run/redis.sock", "unix://***@/run/redis.sock"),
]


@pytest.mark.parametrize(("url", "expected"), REDACT_CASES)
def test_redact_url_hides_passwords(url: str, expected: str) -> None:
    out = redact_url(url)
    assert SECRET not in out
    assert out == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://h:6379",
        "rediss://redis.example.com:6380/1",
        "redis://localhost",
        "unix:///run/redis.sock",
        "not a url",
        "",
    ],
)
def test_redact_url_leaves_urls_without_credentials_alone(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_hides_password_query_parameter() -> None:
    assert SECRET not in redact_url(f"redis://h:6379/0?password={SECRET}")
