"""Fail when requirements.lock no longer matches the pins in pyproject.toml (run `make lock`)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted += extra
    locked = {
        _normal(m.group(1)): m.group(2)
        for m in re.finditer(
            r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M
        )
    }
    stale = []
    for requirement in wanted:
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", requirement)
        if match is None:
            stale.append(f"{requirement}: not pinned with == in pyproject.toml")
        elif locked.get(_normal(match.group(1))) != match.group(2):
            stale.append(f"{requirement}: the lock has {locked.get(_normal(match.group(1)))}")
    for line in stale:
        print(f"requirements.lock is stale: {line} (run `make lock`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
