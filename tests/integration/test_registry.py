"""Delivery from a registry with real parts: Debian's docker-registry (the CNCF distribution
registry) on loopback, images pushed straight through its HTTP API (a busybox layer, no
Docker build, nothing pulled from outside), the daemon, dockerd, Redis and Traefik."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testkit.http_api import Api
from testkit.load import Load
from testkit.registry import Endpoint, LocalRegistry
from testkit.sidecar import Sidecar, converged, served
from testkit.traefik import Traefik
from testkit.wait import free_port, wait_for
from testkit.workspace import BUSYBOX, Workspace
from tests.integration.conftest import SidecarFactory

TOKEN = "registry-hook-token-for-tests"
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]


def image_layer(text: str) -> bytes:
    """busybox (executable) and a page: what the fixture images of the other tests hold."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, mode in (
            ("bin/busybox", BUSYBOX.read_bytes(), 0o755),
            ("www/index.html", f"{text}\n".encode(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def image_service(ws: Workspace, name: str, image: str, replicas: int) -> str:
    """A served service from `image` only (no build section); its Host header."""
    host = f"{name}.{ws.name}.test"
    ws.services[name] = {
        "image": image,
        "command": HTTPD,
        "init": True,
        "x-sidecar": {
            "port": 8080,
            "replicas": replicas,
            "rule": f"Host(`{host}`)",
            "health": {"start_timeout": 5},
        },
    }
    return host


@pytest.fixture
def hook_port() -> int:
    return free_port()


@pytest.fixture
def notifying(tmp_path: Any, hook_port: int) -> Iterator[LocalRegistry]:
    """A registry whose notifications go to the sidecar's registry hook, with the token."""
    endpoint = Endpoint(
        "sidecar",
        f"http://127.0.0.1:{hook_port}/v1/hooks/registry",
        {"Authorization": f"Bearer {TOKEN}"},
        timeout_s=1.0,
        threshold=3,
        backoff_s=1.0,
    )
    with LocalRegistry(tmp_path / "registry", notify=[endpoint]) as registry:
        yield registry


@pytest.fixture
def silent(tmp_path: Any) -> Iterator[LocalRegistry]:
    """A registry that tells nobody: only the drift check finds its pushes."""
    with LocalRegistry(tmp_path / "silent") as registry:
        yield registry


def instance_ids(sc: Sidecar, service: str) -> set[str]:
    return set(sc.ws.containers(service))


def pulls(sc: Sidecar, service: str) -> int:
    return len(sc.events("pull-started", service))


def test_a_push_notification_rolls_out_the_service_running_it_and_no_other(
    workspace: Workspace,
    sidecar: SidecarFactory,
    traefik: Traefik,
    notifying: LocalRegistry,
    hook_port: int,
) -> None:
    notifying.push_image("web", "latest", image_layer("v1"))
    notifying.push_image("other", "latest", image_layer("other v1"))
    host = image_service(workspace, "web", f"{notifying.host}/web:latest", 2)
    image_service(workspace, "other", f"{notifying.host}/other:latest", 1)
    workspace.write_compose()
    sc = sidecar(http_listen=f"127.0.0.1:{hook_port}", registry_hook_token=TOKEN)
    sc.start()
    wait_for(lambda: converged(sc, "web", 2) and converged(sc, "other", 1), 90, "both serving")
    wait_for(lambda: traefik.get(host) == (200, "v1"), 30, "v1 through traefik")
    sc.settle()
    other = instance_ids(sc, "other")
    with Load(traefik, host, rate=50) as load:
        notifying.push_image("web", "latest", image_layer("v2"))
        wait_for(lambda: load.bodies(since=time.time() - 0.5) == {"v2"}, 60, "v2 served alone")
        time.sleep(1.0)
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    assert instance_ids(sc, "other") == other, "other runs another image: left alone"
    # the registry retries the notifications of the pushes made before the sidecar was up:
    # those pull what runs already and change nothing
    wait_for(
        lambda: any(e["changed"] == "1" for e in sc.events("pulled", "web")), 30, "the pull's end"
    )
    assert all(e["changed"] == "0" for e in sc.events("pulled", "other"))
    web_pulls, other_pulls = pulls(sc, "web"), pulls(sc, "other")
    # a wrong token changes nothing
    api = Api(hook_port)
    answer = api.post(
        "/v1/hooks/registry", b'{"events": []}', token=None, headers={"Authorization": "Bearer x"}
    )
    assert (answer.status, answer.json()) == (401, {"error": "unauthorized"})
    # Docker Hub's format, for an image nothing here runs: answered, nothing pulled
    body = b'{"push_data": {"tag": "latest"}, "repository": {"repo_name": "library/web"}}'
    answer = api.post(f"/v1/hooks/dockerhub/{TOKEN}", body, token=None)
    assert answer.status == 202 and answer.json()["images"] == ["docker.io/library/web:latest"]
    time.sleep(1.5)
    assert (pulls(sc, "web"), pulls(sc, "other")) == (web_pulls, other_pulls)


def test_drift_finds_a_push_nobody_announced_and_apply_rolls_it_out(
    workspace: Workspace,
    sidecar: SidecarFactory,
    traefik: Traefik,
    silent: LocalRegistry,
) -> None:
    amd64 = silent.push_image("api", "v1-amd64", image_layer("api v1"))
    arm64 = silent.push_image("api", "v1-arm64", image_layer("api arm"), ("linux", "arm64"))
    silent.push_index("api", "latest", {("linux", "amd64"): amd64, ("linux", "arm64"): arm64})
    host = image_service(workspace, "api", f"{silent.host}/api:latest", 2)
    workspace.write_compose()
    port = free_port()
    sc = sidecar(http_listen=f"127.0.0.1:{port}")
    sc.start()
    wait_for(lambda: converged(sc, "api", 2), 90, "api serving")
    wait_for(lambda: traefik.get(host) == (200, "api v1"), 30, "v1 through traefik")
    api = Api(port)
    report = api.get("/v1/drift", timeout=30).json()
    assert report["services"]["api"]["drifted"] is False, report
    # the index re-pushed for the other platform only: no drift on this one
    arm64b = silent.push_image("api", "v1b-arm64", image_layer("api arm b"), ("linux", "arm64"))
    silent.push_index("api", "latest", {("linux", "amd64"): amd64, ("linux", "arm64"): arm64b})
    report = api.get("/v1/drift", timeout=30).json()
    assert report["services"]["api"]["drifted"] is False, report
    # a new image for this platform, announced to nobody
    amd64c = silent.push_image("api", "v2-amd64", image_layer("api v2"))
    silent.push_index("api", "latest", {("linux", "amd64"): amd64c, ("linux", "arm64"): arm64b})
    out = cli(sc, "drift")
    assert out.returncode == 0 and "api drifted" in out.stdout, out.stdout + out.stderr
    assert traefik.get(host) == (200, "api v1"), "without --apply nothing changes"
    with Load(traefik, host, rate=50) as load:
        out = cli(sc, "drift", "--apply")
        assert out.returncode == 0 and "1 pulled" in out.stdout, out.stdout + out.stderr
        wait_for(lambda: load.bodies(since=time.time() - 0.5) == {"api v2"}, 60, "v2 served")
        time.sleep(1.0)
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    report = api.get("/v1/drift", timeout=30).json()
    assert report["services"]["api"]["drifted"] is False, report
    # the registry goes away: reported, nothing touched
    wait_for(lambda: sc.events("pulled", "api"), 30, "the pull's end")
    wait_for(lambda: converged(sc, "api", 2), 30, "the old instances retired")
    silent.stop()
    before = instance_ids(sc, "api")
    out = cli(sc, "drift", "--apply")
    assert out.returncode == 0 and "registry unreachable" in out.stdout, out.stdout
    assert instance_ids(sc, "api") == before


def cli(sc: Sidecar, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        env=sc.env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_each_good_build_is_pushed_and_its_digest_goes_with_the_version(
    workspace: Workspace, sidecar: SidecarFactory, silent: LocalRegistry
) -> None:
    served(workspace, "web", replicas=1, push=f"{silent.host}/team/web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: converged(sc, "web", 1), 60, "web serving")
    wait_for(lambda: sc.events("pushed", "web"), 60, "the first build pushed")
    first = newest_version(sc, "web")
    assert first["digest"] == registry_digest(silent, "team/web", "latest")
    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: len(sc.events("pushed", "web")) == 2, 60, "the rebuild pushed")
    wait_for(lambda: newest_version(sc, "web")["digest"] != first["digest"], 30, "its version")
    second = newest_version(sc, "web")
    assert second["digest"] == registry_digest(silent, "team/web", "latest")
    # the registry away: the build is live all the same, the failure reported
    silent.stop()
    workspace.write("web/www/index.html", "v3\n")
    wait_for(lambda: sc.events("push-failed", "web"), 90, "the push failure reported")
    assert newest_version(sc, "web")["digest"] == ""
    assert converged(sc, "web", 1)


def newest_version(sc: Sidecar, service: str) -> dict[str, Any]:
    number = sc.r.get(f"sidecar:{sc.ws.name}:version:{service}")
    raw = sc.r.hget(f"sidecar:{sc.ws.name}:versions:{service}", str(number))
    return dict(json.loads(str(raw))) if raw else {}


def registry_digest(registry: LocalRegistry, repo: str, tag: str) -> str:
    head = registry.http.head(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert head.status_code == 200, head.status_code
    return str(head.headers["Docker-Content-Digest"])


def test_a_pushed_image_that_fails_its_health_check_leaves_the_old_serving(
    workspace: Workspace,
    sidecar: SidecarFactory,
    traefik: Traefik,
    notifying: LocalRegistry,
    hook_port: int,
) -> None:
    notifying.push_image("web", "latest", image_layer("v1"))
    host = image_service(workspace, "web", f"{notifying.host}/web:latest", 2)
    workspace.write_compose()
    sc = sidecar(http_listen=f"127.0.0.1:{hook_port}", registry_hook_token=TOKEN)
    sc.start()
    wait_for(lambda: converged(sc, "web", 2), 90, "web serving")
    wait_for(lambda: traefik.get(host) == (200, "v1"), 30, "v1 through traefik")
    api = Api(hook_port)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # bad envelopes: 400 / 413, nothing done
    assert api.post("/v1/hooks/registry", b"{nope", token=None, headers=auth).status == 400
    big = b'{"events": [' + b" " * (2 * 1024 * 1024) + b"]}"
    assert api.post("/v1/hooks/registry", big, token=None, headers=auth).status == 413
    unknown = (
        b'{"events": [{"id": "e1", "action": "push", "target": {"mediaType": '
        b'"application/vnd.oci.image.manifest.v1+json", "repository": "nothing/here", '
        b'"tag": "latest", "digest": "sha256:'
        + b"a" * 64
        + b'"}, "request": {"host": "'
        + notifying.host.encode()
        + b'"}}]}'
    )
    answer = api.post("/v1/hooks/registry", unknown, token=None, headers=auth)
    assert answer.status == 202 and answer.json()["result"] == "queued"  # for other sidecars
    # an image whose server never starts: the rollout stops, v1 keeps serving
    failed_before = len(sc.events("deploy-failed", "web"))
    broken = io.BytesIO()
    with tarfile.open(fileobj=broken, mode="w") as tar:
        info = tarfile.TarInfo("www/index.html")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"v2\n"))  # no busybox: the command cannot run
    with Load(traefik, host, rate=50) as load:
        notifying.push_image("web", "latest", broken.getvalue())
        wait_for(lambda: len(sc.events("deploy-failed", "web")) > failed_before, 90, "reported")
        time.sleep(1.0)
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    assert load.bodies(since=0) == {"v1"}
    assert converged(sc, "web", 2)
