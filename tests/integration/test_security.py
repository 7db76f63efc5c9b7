"""Redis with ACL users and passwords works, and secrets never reach logs or status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from testkit.sidecar import Sidecar, converged, served
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace

SECRET = "s3cr3t-Pa55word"


def test_acl_user_and_password_work_and_stay_secret(workspace: Workspace, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            "sidecar",
            "on",
            f">{SECRET}",
            "~*",
            "&*",
            "+@all",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://sidecar:{SECRET}@127.0.0.1:{port}/0"
    sc = Sidecar(workspace, url, tmp_path / "sidecar.log", log_json="true")
    try:
        wait_for(lambda: _pings(url), 10, "the ACL redis to answer")
        with redis.Redis(port=port) as anonymous:
            try:
                anonymous.ping()
                raise AssertionError("the default user must be off in this test")
            except redis.AuthenticationError:
                pass
        served(workspace, "web", replicas=1)
        workspace.write_compose()
        sc.start()
        wait_for(lambda: converged(sc, "web", 1), 30, "serving through an ACL-protected redis")
        status = subprocess.run(
            [sys.executable, "-m", "sidecar", "status"],
            env=sc.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 0 and "alive" in status.stdout
        bad = dict(sc.env(), SIDECAR_REDIS_URL=url.replace(SECRET, "wrong-" + SECRET))
        denied = subprocess.run(
            [sys.executable, "-m", "sidecar", "status"],
            env=bad,
            capture_output=True,
            text=True,
            check=False,
        )
        assert denied.returncode == 2
        sc.stop()
        for text in (
            sc.log.read_text(),
            status.stdout,
            status.stderr,
            denied.stdout,
            denied.stderr,
        ):
            assert SECRET not in text, "the password leaked"
        assert "sidecar:***@127.0.0.1" in sc.log.read_text()
    finally:
        sc.stop()
        sc.cleanup_keys()
        server.terminate()
        server.wait(10)


def _pings(url: str) -> bool:
    try:
        with redis.Redis.from_url(url) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def test_tls_redis_with_password(workspace: Workspace, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        capture_output=True,
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            SECRET,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://:{SECRET}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    sc = Sidecar(workspace, url, tmp_path / "sidecar.log")
    try:
        wait_for(lambda: _pings(url), 10, "the TLS redis to answer")
        served(workspace, "web", replicas=1)
        workspace.write_compose()
        sc.start()
        wait_for(lambda: converged(sc, "web", 1), 30, "serving through a TLS redis")
        scale = subprocess.run(
            [sys.executable, "-m", "sidecar", "scale", "web", "2"],
            env=sc.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert scale.returncode == 0, scale.stderr
        sc.stop()
        assert SECRET not in sc.log.read_text() + scale.stdout + scale.stderr
    finally:
        sc.stop()
        sc.cleanup_keys()
        server.terminate()
        server.wait(10)
