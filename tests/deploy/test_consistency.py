"""The Dockerfile, the Kubernetes manifests, compose.yaml and nginx.conf describe one image:
same user, port, data directory, health path and command. Docker cannot build here, so
these checks are what keeps them from drifting apart."""

from __future__ import annotations

import inspect
import json
import re
import shlex
from typing import Any

import uvicorn

from keel import cli
from keel.settings import Settings
from tests.deploy.conftest import DEPLOY, load_manifests, load_yaml


def _dockerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments, continuation lines joined (one list entry per use)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def _env(instructions: dict[str, list[str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in instructions["ENV"]:
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            values[key] = value
    return values


TMP = "/tmp"  # noqa: S108 - the container path, not a file this test writes
DOCKERFILE = _dockerfile()
DOCKER_ENV = _env(DOCKERFILE)
MANIFESTS = load_manifests()
POD = MANIFESTS["Deployment/keel"]["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
CONFIG = MANIFESTS["ConfigMap/keel"]["data"]
COMPOSE = load_yaml(DEPLOY / "compose.yaml")


def _uid_gid() -> tuple[int, int]:
    run = " ".join(DOCKERFILE["RUN"])
    uid = re.search(r"useradd [^&]*--uid (\d+)", run)
    gid = re.search(r"groupadd [^&]*--gid (\d+)", run)
    assert uid, "the Dockerfile creates its user with a fixed --uid"
    assert gid, "the Dockerfile creates its group with a fixed --gid"
    return int(uid.group(1)), int(gid.group(1))


def test_image_user_is_the_fixed_non_root_uid_the_manifests_run_as() -> None:
    uid, gid = _uid_gid()
    assert uid != 0
    assert DOCKERFILE["USER"] == [f"{uid}:{gid}"], "numeric USER, so runAsNonRoot can verify it"
    assert POD["securityContext"]["runAsUser"] == uid
    assert POD["securityContext"]["runAsGroup"] == gid
    assert CONTAINER["securityContext"]["runAsUser"] == uid
    assert COMPOSE["x-keel"]["user"] == f"{uid}:{gid}"


def test_port_agrees_everywhere() -> None:
    port = int(DOCKER_ENV["KEEL_PORT"])
    grpc_port = int(CONFIG["KEEL_GRPC_PORT"])
    assert DOCKERFILE["EXPOSE"] == [f"{port} {grpc_port}"]
    assert int(CONFIG["KEEL_PORT"]) == port
    assert {p["name"]: p["containerPort"] for p in CONTAINER["ports"]} == {
        "http": port,
        "grpc": grpc_port,
    }
    service_ports = {p["name"]: p["targetPort"] for p in MANIFESTS["Service/keel"]["spec"]["ports"]}
    assert service_ports == {"http": "http", "grpc": "grpc"}
    annotations = MANIFESTS["Deployment/keel"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    # compose's nginx reaches the instances by service name on that port.
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstreams = re.findall(r"^\s*server (keel-\d+):(\d+)", nginx, re.MULTILINE)
    assert upstreams == [("keel-1", str(port)), ("keel-2", str(port))]
    assert {"keel-1", "keel-2"} <= set(COMPOSE["services"])


def test_healthcheck_probes_the_liveness_path_on_that_port() -> None:
    (healthcheck,) = DOCKERFILE["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", " ".join(command))
    assert url, healthcheck
    assert int(url.group(1)) == int(DOCKER_ENV["KEEL_PORT"])
    assert url.group(2) == CONTAINER["livenessProbe"]["httpGet"]["path"] == "/health"


def test_data_dir_is_writable_on_a_read_only_root() -> None:
    data_dir = DOCKER_ENV["KEEL_DATA_DIR"]
    assert CONFIG["KEEL_DATA_DIR"] == data_dir
    assert data_dir in {mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE["ENV"][0], "no .pyc writes at run time"
    uid, gid = _uid_gid()
    assert f"chown {uid}:{gid} {data_dir}" in " ".join(DOCKERFILE["RUN"])
    keel: dict[str, Any] = COMPOSE["x-keel"]
    assert keel["read_only"] is True
    assert {entry.split(":")[0] for entry in keel["tmpfs"]} == {TMP, data_dir}
    assert keel["cap_drop"] == ["ALL"]


def test_command_is_the_images_own() -> None:
    assert json.loads(DOCKERFILE["CMD"][0]) == CONTAINER["command"]
    assert CONTAINER["command"] == ["python", "-m", "keel", "serve"]
    assert COMPOSE["services"]["migrate"]["command"] == ["python", "-m", "keel", "migrate"]


def test_nginx_body_limit_is_keels() -> None:
    limit = re.search(r"client_max_body_size (\d+)([km]?);", (DEPLOY / "nginx.conf").read_text())
    assert limit
    size = int(limit.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[limit.group(2)]
    assert (
        size
        == Settings.model_fields["max_body_bytes"].default
        == int(CONFIG["KEEL_MAX_BODY_BYTES"])
    )


def test_nginx_reuses_upstream_connections_only_while_uvicorn_keeps_them() -> None:
    upstream = re.search(r"upstream keel \{(.*?)\n  \}", (DEPLOY / "nginx.conf").read_text(), re.S)
    assert upstream
    assert re.search(r"^\s*keepalive \d+;", upstream.group(1), re.MULTILINE)
    timeout = re.search(r"keepalive_timeout (\d+)s;", upstream.group(1))
    assert timeout
    # `serve` leaves uvicorn's keep-alive at its default; nginx must let go first, or it may
    # send a request down a connection uvicorn is closing.
    assert "timeout_keep_alive" not in inspect.getsource(cli.serve)
    default = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    assert int(timeout.group(1)) < default


_SET_HEADER = r"^\s*proxy_set_header (\S+) ([^;\n]+);"


def test_nginx_locations_that_set_headers_repeat_the_servers() -> None:
    # nginx inherits proxy_set_header only into a level that sets none itself, so a location
    # adding Upgrade would otherwise drop X-Forwarded-For and X-Request-ID.
    server = (DEPLOY / "nginx.conf").read_text().split("  server {", 1)[1]
    outside = re.sub(r"location [^{]*\{[^}]*\}", "", server)
    inherited = set(re.findall(_SET_HEADER, outside, re.MULTILINE))
    assert {name for name, _ in inherited} >= {"X-Forwarded-For", "X-Request-ID", "Host"}
    for block in re.findall(r"location [^{]*\{[^}]*\}", server):
        own = set(re.findall(_SET_HEADER, block, re.MULTILINE))
        if own:
            names = {name for name, _ in own}
            assert {h for h in inherited if h[0] not in names} <= own, block
