"""Trusted documents (SPEC §8): in production, an optional allow-list of the only documents
that run, over HTTP and WebSocket alike.

`KEEL_GRAPHQL_TRUSTED_DOCUMENTS` names a JSON manifest `{"<sha256 hex of the document>":
"<document>", …}` (the shape Relay's and GraphQL Codegen's persisted-document manifests
have). A client sends a listed document by its hash alone
(`extensions.persistedQuery.sha256Hash`, as automatic persisted queries do) or in full; any
other document is refused with DOCUMENT_NOT_TRUSTED before it executes (one that does
not even parse gets its parse error, as anywhere).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from keel.platform.security import sha256_hex
from keel.settings import ConfigurationError, Env, Settings

NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"
NOT_TRUSTED_MESSAGE = "Only trusted documents run here; this one is not on the list"


def load_trusted_documents(settings: Settings) -> Mapping[str, str] | None:
    """The allow-list (hash -> document) in force, or None when any document may run."""
    path = settings.graphql_trusted_documents
    if path is None or settings.env is not Env.production:
        return None
    try:
        manifest = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"KEEL_GRAPHQL_TRUSTED_DOCUMENTS: cannot read {path} as JSON ({exc})"
        ) from exc
    if not isinstance(manifest, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()
    ):
        raise ConfigurationError(
            "KEEL_GRAPHQL_TRUSTED_DOCUMENTS: the file must be a JSON object of "
            '{"<sha256 hex>": "<document>"}'
        )
    wrong = [key for key, document in manifest.items() if sha256_hex(document) != key.lower()]
    if wrong:
        raise ConfigurationError(
            f"KEEL_GRAPHQL_TRUSTED_DOCUMENTS: {len(wrong)} key(s) are not the sha256 of their "
            f"document (first: {wrong[0][:80]})"
        )
    return {key.lower(): document for key, document in manifest.items()}


class TrustedDocuments(SchemaExtension):
    """Refuses any document that is not on the allow-list, before it executes, with that
    error alone (no validation message describes the schema to the sender). The last
    extension: its hook replaces the errors the validation hooks before it set."""

    def __init__(self, *, documents: Mapping[str, str]) -> None:
        self.documents = documents

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is None or sha256_hex(context.query) not in self.documents:
            context.pre_execution_errors = [
                GraphQLError(NOT_TRUSTED_MESSAGE, extensions={"code": NOT_TRUSTED})
            ]
        yield
