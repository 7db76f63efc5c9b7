"""A private container registry (the CNCF distribution registry, `docker-registry serve`) on a
free loopback port, and pushing images to it straight through its HTTP API, without Docker.

The images pushed are real ones: a config blob whose diff_ids match, a gzip'd layer, an OCI
or Docker v2 manifest; an OCI image index for several platforms. A test that pulls them with
Docker gets what it pushed (a `layer()` tar of its own files)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
import yaml

from testkit.bcrypt import hashpw
from testkit.wait import file_tail, free_port, wait_for

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

Platform = tuple[str, str] | tuple[str, str, str]  # (os, architecture[, variant])


@dataclass(frozen=True)
class Endpoint:
    """One `notifications.endpoints` entry: where the registry POSTs its events (pushes,
    pulls, deletes), with `headers` sent on each (e.g. {"Authorization": "Bearer <token>"})."""

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 1.0
    threshold: int = 3
    backoff_s: float = 1.0

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "headers": {k: [v] for k, v in self.headers.items()},
            "timeout": f"{int(self.timeout_s * 1000)}ms",
            "threshold": self.threshold,
            "backoff": f"{int(self.backoff_s * 1000)}ms",
        }


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: Mapping[str, bytes]) -> bytes:
    """A layer tar holding `files` (path -> content, mode 0644, mtime 0): the same files make
    the same bytes, so the same digest."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _gzip(data: bytes) -> bytes:
    return data if data[:2] == b"\x1f\x8b" else gzip.compress(data, mtime=0)


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:<free port>, its storage and config in `workdir`
    (a temporary directory removed by `stop` when none is given). With `username`, the
    registry asks for Basic auth (htpasswd, bcrypt); with `notify`, it POSTs its events there.
    The push helpers authenticate themselves."""

    def __init__(
        self,
        workdir: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        notify: Sequence[Endpoint] = (),
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="registry-")) if workdir is None else workdir
        self.port = free_port()
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.notify = tuple(notify)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: no proxy, no .netrc
        if username is not None:
            self.http.auth = (username, self.password)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.username is not None:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{self.username}:{hashpw(self.password)}\n")
            config["auth"] = {"htpasswd": {"realm": "testkit", "path": str(htpasswd)}}
        if self.notify:
            config["notifications"] = {"endpoints": [e.config() for e in self.notify]}
        return config

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(yaml.safe_dump(self._config()))
        # REGISTRY_* variables would override the config file
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_for(self._answers, 10, f"docker-registry on {self.host}")
        except AssertionError as exc:
            self._end()
            raise AssertionError(f"{exc}\n{file_tail(self.log_path, 20)}") from None

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"docker-registry exited with {self.proc.returncode}")
        try:
            status = requests.get(f"{self.url}/v2/", timeout=0.5).status_code
        except requests.RequestException:
            return False
        return status in (200, 401)

    def stop(self) -> None:
        """Stop the registry; its storage goes too when the directory was its own."""
        self._end()
        self.http.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Down and up again on the same port, with the same storage (what was pushed stays)."""
        self._end()
        self.start()

    def _end(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- pushing, through the HTTP API -------------------------------------------------------
    def _check(self, resp: requests.Response, expected: int, what: str) -> requests.Response:
        if resp.status_code != expected:
            raise AssertionError(f"{what}: {resp.status_code} {resp.text[:500]}")
        return resp

    def push_blob(self, repo: str, data: bytes) -> str:
        """A monolithic upload: POST /v2/<repo>/blobs/uploads/, then PUT <location>&digest=."""
        digest = digest_of(data)
        started = self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=10)
        location = self._check(started, 202, f"blob upload for {repo}").headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        done = self.http.put(
            f"{location}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        self._check(done, 201, f"blob {digest} into {repo}")
        return digest

    def push_manifest(
        self, repo: str, tag: str, manifest: Mapping[str, Any], media_type: str
    ) -> str:
        """PUT /v2/<repo>/manifests/<tag>; the digest the registry computed (that of the bytes
        sent)."""
        body = canonical(manifest)
        resp = self.http.put(
            f"{self.url}/v2/{repo}/manifests/{tag}",
            data=body,
            headers={"Content-Type": media_type},
            timeout=10,
        )
        digest = self._check(resp, 201, f"manifest {repo}:{tag}").headers["Docker-Content-Digest"]
        assert digest == digest_of(body), f"the registry made {digest} of {digest_of(body)}"
        return str(digest)

    def push_image(
        self,
        repo: str,
        tag: str,
        layer_bytes: bytes,
        platform: Platform = ("linux", "amd64"),
        oci: bool = True,
    ) -> str:
        """A one-layer image: `layer_bytes` is the layer's tar (gzip'd here unless it already
        is; any bytes do for a registry that is never pulled from), a config for `platform`,
        an OCI manifest (or a Docker v2 one). The manifest's digest."""
        blob = _gzip(layer_bytes)
        raw = gzip.decompress(blob)
        os_name, arch, *variant = platform
        config: dict[str, Any] = {
            "architecture": arch,
            "os": os_name,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(raw)]},
        }
        if variant:
            config["variant"] = variant[0]
        config_bytes = canonical(config)
        config_digest = self.push_blob(repo, config_bytes)
        layer_digest = self.push_blob(repo, blob)
        media, config_media, layer_media = (
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
            if oci
            else (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {
                "mediaType": config_media,
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [{"mediaType": layer_media, "digest": layer_digest, "size": len(blob)}],
        }
        return self.push_manifest(repo, tag, manifest, media)

    def push_index(self, repo: str, tag: str, manifests: Mapping[Platform, str]) -> str:
        """An OCI image index of manifests already in `repo` ({platform: manifest digest}). The
        index's digest."""
        entries = []
        for platform, digest in manifests.items():
            head = self.http.head(
                f"{self.url}/v2/{repo}/manifests/{digest}",
                headers={"Accept": ", ".join(MANIFEST_TYPES)},
                timeout=10,
            )
            self._check(head, 200, f"manifest {repo}@{digest}")
            os_name, arch, *variant = platform
            where = {"architecture": arch, "os": os_name}
            if variant:
                where["variant"] = variant[0]
            entries.append(
                {
                    "mediaType": head.headers["Content-Type"],
                    "digest": digest,
                    "size": int(head.headers["Content-Length"]),
                    "platform": where,
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.push_manifest(repo, tag, index, OCI_INDEX)

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self.http.delete(f"{self.url}/v2/{repo}/manifests/{digest}", timeout=10)
        self._check(resp, 202, f"delete {repo}@{digest}")
