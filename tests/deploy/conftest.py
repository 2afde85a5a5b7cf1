"""Deployment artefacts under deploy/: where they are, and the external tools that check them."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# Debian installs server binaries in /usr/sbin, which a non-root PATH may lack.
_SBIN = ("/usr/sbin", "/usr/local/sbin")


def require_tool(name: str) -> str:
    """The path of an external tool; CI fails without it (.ci/run installs it), else skip."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if path is None:
        message = f"{name} is not installed (.ci/run installs it with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_yaml(path: Path) -> Any:
    # Any: a YAML document is whatever the file holds; callers index into what they expect.
    return yaml.safe_load(path.read_text())


def load_manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by "kind/name"."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


@dataclass
class Exported:
    names: set[str]
    samples: list[Sample]
    routes: set[str]


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest.fixture
async def exported_metrics(client: httpx.AsyncClient) -> Exported:
    """What a live Keel really exports on /metrics, and the route templates it labels with."""
    # Requests to the routes the rules and panels name, so their series exist for certain;
    # /metrics twice, since a scrape is recorded only after it has been answered.
    for path in ("/api/v1/projects", "/health", "/ready", "/metrics", "/metrics"):
        response = await client.get(path)
    assert response.status_code == 200
    names: set[str] = set()
    samples: list[Sample] = []
    for family in text_string_to_metric_families(response.text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        samples.extend(family.samples)
    routes = set((await client.get("/openapi.json")).json()["paths"])
    routes.update(sample.labels["route"] for sample in samples if "route" in sample.labels)
    return Exported(names=names, samples=samples, routes=routes)
