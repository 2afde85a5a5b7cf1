"""Unary gRPC GetProject beside REST GET /api/v1/projects/{id}, in one run, one driver style.

Starts a real `python -m keel serve` (one worker) with KEEL_GRPC_PORT, signs in, creates one
project, then drives both front doors from this process with the same closed loop: C
concurrent asyncio tasks each sending the next request as soon as the previous answer came
back, for D seconds, on persistent connections: for REST each task holds its own HTTP/1.1
keep-alive connection (a minimal asyncio-streams client: httpx's pool costs more client CPU
than the server spends, so it would measure itself); for gRPC all tasks share one grpc.aio
HTTP/2 channel, as gRPC clients normally do (grpc's client runs in its C core). Phases alternate
REST, gRPC, REST, gRPC so drift on the shared machine hits both; the best phase of each is
reported along with all of them. Rate limits are off so the limiter never answers instead.

    .venv/bin/python bench/grpc_bench.py [--concurrency 64] [--seconds 10]
        [--database-url postgresql+asyncpg://…] [--redis-url redis://…]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

from keel.v1 import project_service_pb2, project_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Phase:
    name: str
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:5s} {self.rps:8.0f} req/s  p50 {self.pct(0.5):6.1f} ms  "
            f"p95 {self.pct(0.95):6.1f} ms  p99 {self.pct(0.99):6.1f} ms  "
            f"errors {self.errors}"
        )


async def closed_loop(
    name: str, send: Callable[[], Awaitable[bool]], *, concurrency: int, seconds: float
) -> Phase:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            ok = await send()
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Phase(name, latencies, errors, time.perf_counter() - began)


async def run(args: argparse.Namespace, http_port: int, grpc_port: int) -> None:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", timeout=30, limits=limits
    ) as http:
        email = f"bench-{os.getpid()}@example.com"
        body = {"email": email, "password": "bench passphrase long enough", "name": "Bench"}
        registered = await http.post("/api/v1/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        token = registered.json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        created = await http.post(
            "/api/v1/projects", json={"name": "Bench project"}, headers=headers
        )
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]

        raw_request = (
            f"GET /api/v1/projects/{project_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        connections: dict[asyncio.Task[None], tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        connections = {}

        async def rest() -> bool:
            task = asyncio.current_task()
            assert task is not None
            if task not in connections:
                connections[task] = await asyncio.open_connection("127.0.0.1", http_port)
            reader, writer = connections[task]
            writer.write(raw_request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200")

        channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = project_service_pb2_grpc.ProjectServiceStub(channel)
        request = project_service_pb2.GetProjectRequest(name=f"projects/{project_id}")
        metadata = (("authorization", f"Bearer {token}"),)

        async def unary() -> bool:
            try:
                await stub.GetProject(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError:
                return False
            return True

        # Warm both paths (caches, connections) before measuring.
        await closed_loop("warm", rest, concurrency=args.concurrency, seconds=2)
        await closed_loop("warm", unary, concurrency=args.concurrency, seconds=2)
        phases: list[Phase] = []
        for _ in range(args.rounds):
            for name, send in (("REST", rest), ("gRPC", unary)):
                phase = await closed_loop(
                    name, send, concurrency=args.concurrency, seconds=args.seconds
                )
                print(phase.line(), flush=True)
                phases.append(phase)
        await channel.close()
        for _reader, writer in connections.values():
            writer.close()
    best = {
        name: max((p for p in phases if p.name == name), key=lambda p: p.rps)
        for name in ("REST", "gRPC")
    }
    print(f"\nbest of {args.rounds} ({args.concurrency} concurrent, {args.seconds:.0f} s each):")
    for phase in best.values():
        print(phase.line())
    ratio = best["gRPC"].rps / best["REST"].rps
    print(f"gRPC / REST throughput: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    http_port, grpc_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "KEEL_ENV": "test",
            "KEEL_HOST": "127.0.0.1",
            "KEEL_PORT": str(http_port),
            "KEEL_GRPC_PORT": str(grpc_port),
            "KEEL_WORKERS": "1",
            "KEEL_DATA_DIR": data_dir,
            "KEEL_SECRET_KEY": "bench-secret-" + "x" * 40,
            "KEEL_LOG_LEVEL": "WARNING",
            "KEEL_RATE_LIMIT_ENABLED": "false",
            "KEEL_OVERLOAD_MAX_CONCURRENCY": "4096",
            "KEEL_ARGON2_MEMORY_KIB": "1024",
            "KEEL_ARGON2_TIME_COST": "1",
            "KEEL_ARGON2_PARALLELISM": "1",
        }
        env.pop("KEEL_DATABASE_URL", None)
        env.pop("KEEL_REDIS_URL", None)
        if args.database_url:
            env["KEEL_DATABASE_URL"] = args.database_url
            subprocess.run([sys.executable, "-m", "keel", "migrate"], env=env, cwd=ROOT, check=True)
        if args.redis_url:
            env["KEEL_REDIS_URL"] = args.redis_url
        shape = "PostgreSQL + Redis" if args.database_url else "SQLite"
        print(f"bench: gRPC GetProject vs REST GET /projects/{{id}} on {shape}, one worker")
        server = subprocess.Popen([sys.executable, "-m", "keel", "serve"], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            asyncio.run(run(args, http_port, grpc_port))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
