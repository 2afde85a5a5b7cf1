"""The shape of the code the architecture pass set (issue 9): small modules, no package cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keel

SOURCE = Path(keel.__file__).parent
ROOT = SOURCE.parent.parent
MAX_LINES = 500


def test_no_module_exceeds_500_lines() -> None:
    # keel/v1 holds protoc's generated code (`make protos`), not ours to shape.
    sizes = {
        path.relative_to(SOURCE).as_posix(): len(path.read_text().splitlines())
        for path in SOURCE.rglob("*.py")
        if path.parent.name != "v1"
    }
    assert len(sizes) > 100  # found the package's own modules
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_package_import_graph_has_no_cycle() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "keel.identity ->" in result.stdout, result.stdout + result.stderr
    assert "cycle:" not in result.stdout
    assert result.returncode == 0, result.stderr
