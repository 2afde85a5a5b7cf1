"""Keel's Python client: sessions and live events over the generated `keel_api` package."""

from keel_api.client import AuthenticatedClient, Client
from keel_client.realtime import ProjectEvent, Subscription
from keel_client.session import KeelSession, SessionExpiredError, Tokens

__all__ = [
    "AuthenticatedClient",
    "Client",
    "KeelSession",
    "ProjectEvent",
    "SessionExpiredError",
    "Subscription",
    "Tokens",
]
