"""Client tests import the Python client from its source folder (it is not a dependency of
Keel) and run against a real server."""

from __future__ import annotations

import sys

from tests.clients.live import ROOT, live_keel

sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

__all__ = ["live_keel"]
