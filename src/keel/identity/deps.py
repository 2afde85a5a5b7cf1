"""The identity part as a route dependency (the caller's dependencies are platform's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from keel.identity.service import IDENTITY, Identity
from keel.platform.deps import part

IdentityDep = Annotated[Identity, Depends(part(IDENTITY))]
