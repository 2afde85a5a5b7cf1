"""deploy/nginx.conf, as is, in front of two real Keel processes: balancing, failover, the
client IP and request id, WebSocket and SSE pass-through, and the JSON error envelope for
every error nginx answers itself. Only the upstream and listen addresses are substituted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from keel.platform.errors import ErrorBody
from tests.conftest import FAST_ARGON2, Backend, register_user
from tests.deploy.conftest import DEPLOY, require_tool
from tests.realtime.test_sse import SseReader
from tests.servers import Server, free_port, run_server

MAX_BODY_BYTES = 1024 * 1024  # KEEL_MAX_BODY_BYTES's default; test_consistency ties them


def render_config(*, upstreams: Sequence[str], port: int, temp_dir: Path) -> str:
    """deploy/nginx.conf with the upstream servers and the listen address replaced, and the
    temporary-file paths (compiled-in system paths otherwise) moved into temp_dir."""
    text = (DEPLOY / "nginx.conf").read_text()
    servers = re.findall(r"^(\s*)server keel-\d+:\d+( .*)?;\n", text, re.MULTILINE)
    assert len(servers) == 2, "nginx.conf names its upstream servers keel-1 and keel-2"
    indent, options = servers[0]
    block = "".join(f"{indent}server {address}{options};\n" for address in upstreams)
    text = re.sub(r"^\s*server keel-\d+:\d+( .*)?;\n", "", text, flags=re.MULTILINE)
    text, upstream_count = re.subn(r"(upstream keel \{\n)", lambda m: m.group(1) + block, text)
    text, listen_count = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", text)
    temp_paths = "".join(
        f"  {kind}_temp_path {temp_dir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text, http_count = re.subn(r"^http \{\n", lambda m: m.group(0) + temp_paths, text, flags=re.M)
    assert (upstream_count, listen_count, http_count) == (1, 1, 1)
    return text


@dataclass
class Nginx:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self, *, containing: str) -> str:
        """The access log once it has the line with `containing` (nginx writes a request's
        line after the response is sent, so a client can be a moment ahead of it)."""
        deadline = time.monotonic() + 10
        while True:
            text = (self.directory / "stdout.log").read_text(errors="replace")
            if containing in text or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


@contextmanager
def run_nginx(upstreams: Sequence[str], *, directory: Path) -> Iterator[Nginx]:
    binary = require_tool("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(render_config(upstreams=upstreams, port=port, temp_dir=directory))
    # As root the workers would drop to an unprivileged user that cannot write temp_dir.
    globals_ = f"daemon off; pid {directory / 'nginx.pid'};"
    if os.geteuid() == 0:
        globals_ += " user root;"
    command = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)]
    check = subprocess.run([*command, "-t", "-g", globals_], capture_output=True, check=False)
    assert check.returncode == 0, check.stderr.decode()
    with (directory / "stdout.log").open("wb") as out, (directory / "stderr.log").open("wb") as err:
        process = subprocess.Popen([*command, "-g", globals_], stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, (directory / "stderr.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        yield Nginx(port=port, directory=directory)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def instance_env(
    backend: Backend, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Settings for Keel processes sharing one database (and Redis, when the run has it)."""
    directory = tmp_path_factory.mktemp("keel-behind-nginx")
    if backend.kind == "postgresql":
        database_url = backend.url
    else:
        assert backend.template is not None
        (directory / "keel.db").write_bytes(backend.template.read_bytes())
        database_url = f"sqlite+aiosqlite:///{directory / 'keel.db'}"
    env = {
        "KEEL_DATABASE_URL": database_url,
        "KEEL_SECRET_KEY": "nginx-test-secret-" + "y" * 40,
        "KEEL_DATA_DIR": str(directory / "data"),
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_EVENTS_POLL_SECONDS": "0.2",
        # Broad, like compose's private ranges: the clients (other 127.x addresses) are in it
        # too, so only nginx replacing X-Forwarded-For keeps a forged one from being believed.
        "KEEL_TRUSTED_PROXIES": "127.0.0.0/8",
        "KEEL_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        **{f"KEEL_{key.upper()}": str(value) for key, value in FAST_ARGON2.items()},
    }
    if redis_url:
        env["KEEL_REDIS_URL"] = redis_url
    return env


@pytest.fixture(scope="module")
def instances(
    instance_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    directory = tmp_path_factory.mktemp("keel-logs")
    with ExitStack() as stack:
        first = stack.enter_context(run_server(instance_env, log_dir=directory))
        second = stack.enter_context(run_server(instance_env, log_dir=directory))
        yield first, second


@pytest.fixture(scope="module")
def front(
    instances: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    upstreams = [f"127.0.0.1:{server.port}" for server in instances]
    with run_nginx(upstreams, directory=tmp_path_factory.mktemp("nginx")) as nginx:
        yield nginx


def assert_no_version_leak(response: httpx.Response) -> None:
    assert response.headers.get("server", "") == "nginx"


def assert_envelope(response: httpx.Response, *, status: int, code: str) -> dict[str, Any]:
    """nginx's own error in Keel's envelope (not Keel's: Keel adds its security headers)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "x-frame-options" not in response.headers, "answered by Keel, not by nginx"
    assert_no_version_leak(response)
    body: dict[str, Any] = response.json()
    ErrorBody.model_validate(body)
    assert body["code"] == code
    assert body["details"] == []
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert response.headers["x-request-id"]
    return body


def _health_counts(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_request_duration_seconds_count"
        and sample.labels["route"] == "/health"
    )


def test_requests_alternate_between_both_instances(
    instances: tuple[Server, Server], front: Nginx
) -> None:
    before = [_health_counts(server) for server in instances]
    with httpx.Client(base_url=front.url, timeout=10) as client:
        for _ in range(20):
            response = client.get("/health")
            assert response.status_code == 200
            assert_no_version_leak(response)
            # Keel's own headers pass through untouched.
            assert response.headers["x-content-type-options"] == "nosniff"
    served = [
        _health_counts(server) - count for server, count in zip(instances, before, strict=True)
    ]
    assert sum(served) == 20
    assert all(count > 0 for count in served), served


def test_request_id_is_one_id_from_client_through_nginx_to_keel(front: Nginx) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        mine = f"trace-{uuid.uuid4().hex}"
        assert client.get("/health", headers={"X-Request-ID": mine}).headers["x-request-id"] == mine
        # A malformed id is replaced by nginx's; Keel echoes the one nginx forwarded.
        replaced = client.get("/health", headers={"X-Request-ID": "bad id!"})
    generated = replaced.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert f'"request_id":"{mine}"' in front.access_log(containing=mine)
    assert f'"request_id":"{generated}"' in front.access_log(containing=generated)


def test_keel_sees_the_client_address_nginx_saw_not_a_forged_one(front: Nginx) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=front.url, transport=transport, timeout=10) as client:
        forged = {"X-Forwarded-For": "203.0.113.66"}
        email = f"ip-{uuid.uuid4().hex[:10]}@example.com"
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": "correct horse battery staple", "name": "Ip"},
            headers=forged,
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["accessToken"]
        sessions = client.get(
            "/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}", **forged}
        )
    assert sessions.status_code == 200
    assert [session["ip"] for session in sessions.json()["data"]] == ["127.0.0.2"]


def test_body_over_keels_limit_gets_nginx_json_413(front: Nginx) -> None:
    with httpx.Client(base_url=front.url, timeout=30) as client:
        at_limit = client.post(
            "/api/v1/projects",
            content=b"x" * MAX_BODY_BYTES,
            headers={"Content-Type": "application/json"},
        )
        # Exactly the limit reaches Keel, which reads it (and finds it is not JSON).
        assert at_limit.status_code == 400
        assert at_limit.headers["x-frame-options"] == "DENY"
        over = client.post(
            "/api/v1/projects?secret=1",
            content=b"x" * (MAX_BODY_BYTES + 1),
            headers={"Content-Type": "application/json"},
        )
    body = assert_envelope(over, status=413, code="PAYLOAD_TOO_LARGE")
    assert body["path"] == "/api/v1/projects"


def test_chunked_body_over_the_limit_gets_nginx_json_413(front: Nginx) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: nginx counts as it reads
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    with httpx.Client(base_url=front.url, timeout=30) as client:
        response = client.post(
            "/api/v1/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert_envelope(response, status=413, code="PAYLOAD_TOO_LARGE")


def test_oversized_header_gets_json_431(front: Nginx) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        response = client.get("/api/v1/projects", headers={"X-Padding": "a" * 10_000})
    body = assert_envelope(response, status=431, code="HEADERS_TOO_LARGE")
    assert body["path"] == "/api/v1/projects"


def test_overlong_uri_gets_json_414(front: Nginx) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        response = client.get("/" + "a" * 10_000)
    assert_envelope(response, status=414, code="URI_TOO_LONG")


def _raw(front: Nginx, request: bytes) -> httpx.Response:
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return httpx.Response(int(status_line.split(" ")[1]), headers=headers, content=body)


@pytest.mark.parametrize(
    "request_bytes",
    [b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"],
    ids=["request-line", "header-line"],
)
def test_malformed_request_gets_json_400(front: Nginx, request_bytes: bytes) -> None:
    assert_envelope(_raw(front, request_bytes), status=400, code="BAD_REQUEST")


def test_metrics_are_not_served_through_the_front(front: Nginx) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        response = client.get("/metrics")
        keels_own = client.get("/api/v1/no-such-thing")
    body = assert_envelope(response, status=404, code="NOT_FOUND")
    assert body["path"] == "/metrics"
    # Keel's own errors pass through untouched (nginx does not intercept them).
    assert keels_own.status_code == 404
    assert keels_own.headers["x-frame-options"] == "DENY"
    assert keels_own.json()["path"] == "/api/v1/no-such-thing"


def test_unsafe_path_is_left_out_of_the_json_body(front: Nginx) -> None:
    # A quote or backslash would break the JSON nginx writes; the path is dropped instead.
    response = _raw(
        front, b'GET /x"y\\z HTTP/1.1\r\nHost: x\r\nX-Padding: ' + b"a" * 9000 + b"\r\n\r\n"
    )
    assert assert_envelope(response, status=431, code="HEADERS_TOO_LARGE")["path"] == ""


async def test_websocket_through_nginx_authenticates_and_receives_events(front: Nginx) -> None:
    async with httpx.AsyncClient(base_url=front.url, timeout=10) as http:
        user = await register_user(http)
        ws_url = f"ws://127.0.0.1:{front.port}/api/v1/ws"
        async with websockets.connect(ws_url, open_timeout=10) as conn:
            await conn.send(json.dumps({"type": "auth", "accessToken": user.access_token}))
            while json.loads(await asyncio.wait_for(conn.recv(), 10))["type"] != "ready":
                pass
            created = await http.post(
                "/api/v1/projects", json={"name": "Through nginx"}, headers=user.headers
            )
            assert created.status_code == 201
            while True:
                message = json.loads(await asyncio.wait_for(conn.recv(), 10))
                if message["type"] != "ping":
                    break
    assert message["type"] == "project.created"
    assert message["data"]["id"] == created.json()["id"]


async def test_sse_through_nginx_streams_unbuffered_and_tickets_stay_out_of_the_log(
    front: Nginx,
) -> None:
    async with httpx.AsyncClient(base_url=front.url, timeout=10) as http:
        user = await register_user(http)
        ticket = (await http.post("/api/v1/events/tickets", headers=user.headers)).json()["ticket"]
        async with http.stream("GET", f"/api/v1/events?ticket={ticket}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response)
            await reader.until("ready")
            created = await http.post(
                "/api/v1/projects", json={"name": "Streamed via nginx"}, headers=user.headers
            )
            message = await reader.next()
    assert message.event == "project.created"
    assert message.json["data"]["id"] == created.json()["id"]
    log = front.access_log(containing='"path":"/api/v1/events"')
    assert '"path":"/api/v1/events"' in log
    assert ticket not in log


def test_a_stopped_instance_is_skipped(instances: tuple[Server, Server], tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with (
        run_nginx([f"127.0.0.1:{instances[0].port}", dead], directory=tmp_path) as nginx,
        httpx.Client(base_url=nginx.url, timeout=10) as client,
    ):
        assert [client.get("/health").status_code for _ in range(6)] == [200] * 6


def test_a_stopped_instance_behind_nginx_gives_json_502(
    instance_env: dict[str, str], tmp_path: Path
) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(run_server(instance_env, log_dir=tmp_path))
        nginx = stack.enter_context(
            run_nginx([f"127.0.0.1:{server.port}"], directory=tmp_path / "nginx")
        )
        client = stack.enter_context(httpx.Client(base_url=nginx.url, timeout=10))
        assert client.get("/health").status_code == 200
        server.process.terminate()
        server.process.wait(timeout=15)
        response = client.get("/api/v1/projects?cursor=abc", headers={"X-Request-ID": "gone-1"})
    body = assert_envelope(response, status=502, code="BAD_GATEWAY")
    assert body["path"] == "/api/v1/projects"
    assert body["requestId"] == "gone-1"
    assert response.headers["retry-after"] == "1"
