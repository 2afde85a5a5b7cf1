"""Jobs tests share the webhooks fixtures: the worker on, short polls."""

from tests.webhooks.conftest import settings

__all__ = ["settings"]
