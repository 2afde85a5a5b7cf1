"""The one path from an access token to an Actor, shared by REST, streams, GraphQL and gRPC."""

from __future__ import annotations

from typing import Protocol

from keel.platform.actor import Actor, VerifiedToken
from keel.platform.services import Slot


class Authenticator(Protocol):
    """Identity's answer to "who is this?", as every front door asks it."""

    async def authenticate(self, token: str, *, verified: VerifiedToken | None = None) -> Actor:
        """The live actor behind an access token; Unauthorized when invalid or ended."""
        ...

    async def recheck(self, actor: Actor) -> Actor:
        """The same actor with its current role; Unauthorized once its session has ended
        (streams call this before delivering, so a revocation or demotion applies at once)."""
        ...


AUTHENTICATOR: Slot[Authenticator] = Slot("authenticator")
