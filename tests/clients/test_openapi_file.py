"""The committed openapi.json is the app's schema: generated clients never drift from it."""

from __future__ import annotations

import json

from keel.app import create_app
from keel.settings import Settings
from tests.clients.live import ROOT

REGENERATE = "python -m keel openapi -o openapi.json"


def _differences(committed: dict[str, object], current: dict[str, object]) -> list[str]:
    lines: list[str] = []
    for section in ("paths", "components"):
        old = committed.get(section, {})
        new = current.get(section, {})
        assert isinstance(old, dict)
        assert isinstance(new, dict)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                lines.append(f"{section}: {key}")
    for key in sorted(set(committed) | set(current)):
        if key not in ("paths", "components") and committed.get(key) != current.get(key):
            lines.append(key)
    return lines


def test_committed_openapi_matches_the_app(settings: Settings) -> None:
    committed = json.loads((ROOT / "openapi.json").read_text())
    current = json.loads(json.dumps(create_app(settings).openapi()))
    differences = _differences(committed, current)
    assert not differences, (
        f"openapi.json is out of date ({', '.join(differences[:10])}). Regenerate it with "
        f"`{REGENERATE}` (or `make clients`, which also regenerates both clients) and commit."
    )


def test_operation_ids_are_the_handler_names(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert "list_projects" in ids
    assert "create_project" in ids
