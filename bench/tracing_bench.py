"""`make bench`, tracing scenario: the same reads with tracing off and on, in one run.

Two Keel servers in turn (same database, same seed user, `--workers 2`), the second with
KEEL_OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP sink in this process (it answers
200 and counts the bytes, so export cost is included but no collector is measured). Writes
bench/results/tracing.md. Knobs as in driver.py (BENCH_DURATION, BENCH_BACKENDS, ...).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import driver

SCENARIOS = ["get", "list"]
driver.PG_DB = "keel_bench_tracing"  # its own database: runs beside driver.py's without clash
CONNECTIONS = 64


class Sink:
    """OTLP/HTTP endpoint that accepts every export."""

    def __init__(self) -> None:
        self.bytes = 0
        self.posts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(size)
                sink.bytes += size
                sink.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


ROUNDS = 2


def start(label: str, env: dict[str, str]) -> driver.Server:
    port = driver.free_port()
    argv = [driver.PYTHON, "-m", "keel", "serve", "--workers", "2", "--port", str(port)]
    return driver.start_server(f"keel-tracing-{label}", argv, env, port)


def best(results: list[driver.Result], scenario: str) -> driver.Result:
    """The round with the most throughput: the one least disturbed by the neighbours."""
    return max((r for r in results if r.scenario == scenario), key=lambda r: r.ok_rps)


def main() -> None:
    driver.WORK.mkdir(parents=True, exist_ok=True)
    if "postgres" in driver.BACKENDS:
        driver.reset_postgres()
        driver.reset_redis()
        database_url = f"postgresql+asyncpg://{driver.PG_ADMIN.split('://', 1)[1]}/{driver.PG_DB}"
        redis_url: str | None = driver.REDIS_URL
        backend = "PostgreSQL + Redis"
    else:
        db = driver.WORK / "bench-tracing.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        database_url, redis_url, backend = f"sqlite+aiosqlite:///{db}", None, "SQLite"
    data_dir = driver.WORK / "data-tracing"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = driver.keel_env(database_url, redis_url, data_dir)
    driver.migrate(env)
    sink = Sink()
    driver.log(f"tracing cost on {backend}: off, then on (OTLP/HTTP sink {sink.url})")
    driver.CONNECTIONS = [CONNECTIONS]
    off_server = start("off", env)
    on_server = start("on", {**env, "KEEL_OTEL_EXPORTER_OTLP_ENDPOINT": sink.url})
    off: list[driver.Result] = []
    on: list[driver.Result] = []
    try:
        fx = driver.seed(off_server.url, "tracing")
        # Interleaved rounds, both servers warm: a slow minute on the machine hits both.
        for _ in range(ROUNDS):
            off += driver.measure(off_server, "trace-off", fx, SCENARIOS)
            on += driver.measure(on_server, "trace-on", fx, SCENARIOS)
    finally:
        off_server.stop()
        on_server.stop()
    lines = [
        f"# Tracing cost ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {backend}, "
        f"--workers 2, wrk -t2 -c{CONNECTIONS}, {driver.DURATION} s, best of {ROUNDS} rounds)",
        "",
        "| scenario | req/s off | req/s on | throughput cost | p99 off ms | p99 on ms "
        "| CPU us/req off | CPU us/req on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        a, b = best(off, scenario), best(on, scenario)
        cost = 1 - b.ok_rps / a.ok_rps if a.ok_rps else 0.0
        lines.append(
            f"| {a.scenario} | {a.ok_rps:.0f} | {b.ok_rps:.0f} | {cost:.1%} | {a.p99_ms:.1f} "
            f"| {b.p99_ms:.1f} | {a.cpu_us_per_request} | {b.cpu_us_per_request} |"
        )
    lines += ["", f"Spans exported: {sink.posts} OTLP posts, {sink.bytes / 2**20:.1f} MiB.", ""]
    report = "\n".join(lines)
    (driver.RESULTS / "tracing.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
