"""The TypeScript client builds, type-checks (in CI) and works against a live Keel."""

from __future__ import annotations

import shutil
import subprocess

from tests.clients.live import ROOT, require
from tests.servers import Server

TS = ROOT / "clients" / "typescript"


def test_typescript_client_smoke_against_live_keel(live_keel: Server) -> None:
    require(TS / "dist" / "smoke.js", how="cd clients/typescript && npm ci && npm run build")
    node = shutil.which("node")
    assert node, "node is needed to run the TypeScript client"
    result = subprocess.run(
        [node, "--experimental-websocket", "dist/smoke.js", live_keel.url],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{live_keel.log()}"
    assert "typescript client smoke test: ok" in result.stdout
