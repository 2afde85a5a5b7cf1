"""Schemathesis checks for /graphql: no 5xx and no INTERNAL_ERROR; Keel's own error codes
(UNAUTHORIZED, FORBIDDEN, NOT_FOUND, VALIDATION_ERROR, ...) are expected answers to fuzzed
input, which schemathesis' built-in check would count as server errors."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def no_graphql_server_error(ctx: Any, response: Any, case: Any) -> None:
    # Any: schemathesis' check context, response and case objects.
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        if not code or code == "INTERNAL_ERROR":
            raise AssertionError(f"unexpected GraphQL error: {error}")
