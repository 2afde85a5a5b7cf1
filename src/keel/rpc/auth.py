"""keel.v1.AuthService: sign-in and refresh over identity's services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keel.identity import service as identity
from keel.identity.schemas import LoginIn, RefreshIn
from keel.identity.sessions import IssuedTokens
from keel.platform.services import Services
from keel.rpc import calls
from keel.rpc.convert import build, timestamp, user_message
from keel.v1 import auth_service_pb2


def _tokens(tokens: IssuedTokens) -> auth_service_pb2.TokenPair:
    expires = datetime.now(UTC) + timedelta(seconds=tokens.expires_in)
    return auth_service_pb2.TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        access_token_expire_time=timestamp(expires),
    )


class AuthServicer:
    """Registered by generated code, which looks methods up by name."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.identity = services.get(identity.IDENTITY)

    async def Login(  # named as the generated code calls it
        self, request: auth_service_pb2.LoginRequest, context: Any
    ) -> auth_service_pb2.LoginResponse:
        # Any: grpc.aio.ServicerContext (grpcio ships no type hints).
        values: dict[str, object] = {"email": request.email, "password": request.password}
        if request.HasField("totp"):
            values["totp"] = request.totp
        data = build(LoginIn, values)
        async with self.services.database.transaction() as session:
            user, tokens = await identity.login(
                session, self.identity, data=data, context=calls.current().context
            )
            message = auth_service_pb2.LoginResponse(
                user=user_message(user), tokens=_tokens(tokens)
            )
        return message

    async def Refresh(  # named as the generated code calls it
        self, request: auth_service_pb2.RefreshRequest, context: Any
    ) -> auth_service_pb2.RefreshResponse:
        data = build(RefreshIn, {"refreshToken": request.refresh_token})
        async with self.services.database.transaction() as session:
            tokens = await identity.refresh(
                session, self.identity, token=data.refresh_token, context=calls.current().context
            )
        return auth_service_pb2.RefreshResponse(tokens=_tokens(tokens))
