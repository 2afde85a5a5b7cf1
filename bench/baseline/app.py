"""The raw floor of this machine: the same work as Keel's hot endpoints, without a framework.

Plain ASGI + asyncpg + PyJWT + orjson. Each endpoint verifies Keel's own access token (HS256,
same derived key and issuer), runs the same query Keel runs and serialises the same shape.
No cache, no rate limit, no middleware: what is left is the cost a Python service cannot avoid.

Run: BASELINE_DSN=postgresql://… KEEL_SECRET_KEY=… uvicorn bench.baseline.app:app
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import orjson

SECRET = os.environ["KEEL_SECRET_KEY"]
KEY = hmac.new(SECRET.encode(), b"jwt-hs256", hashlib.sha256).digest()
DSN = os.environ["BASELINE_DSN"]
POOL_SIZE = int(os.environ.get("BASELINE_POOL_SIZE", "10"))

LIST_SQL = """
SELECT id, user_id, name, description, status, created_at, updated_at FROM projects
WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3
"""
COUNT_SQL = "SELECT count(*) FROM projects WHERE user_id = $1 AND deleted_at IS NULL"
GET_SQL = """
SELECT id, user_id, name, description, status, created_at, updated_at FROM projects
WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL
"""
PROFILE_SQL = "SELECT id, email, name, role, created_at FROM users WHERE id = $1 AND is_active"
# The floor of Keel's create: the same three rows (project, audit, outbox event) in one
# transaction -- here one statement, the fewest round trips raw asyncpg can do.
INSERT_SQL = """
WITH project AS (
  INSERT INTO projects (id, user_id, name, description, status, version, created_at,
                        updated_at, search_name, search_description)
  VALUES ($1, $2, $3::text, $4::text, 'active', 1, $5, $5, lower($3::text), lower($4::text))
  RETURNING id
), audit AS (
  INSERT INTO audit_log (at, actor_id, action, target_type, target_id, outcome, details)
  SELECT $5, $2, 'project.created', 'project', project.id::text, 'success', '{}'::jsonb
  FROM project
)
INSERT INTO events (type, project_id, owner_id, payload, created_at)
SELECT 'project.created', project.id, $2, $6::jsonb, $5 FROM project
"""

pool: asyncpg.Pool | None = None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _project(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "userId": str(row["user_id"]),
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
    }


async def _send(send: Any, status: int, body: bytes, scope: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json")]
    # Echoed like Keel does, so the overload bench can pair answers with requests.
    headers.extend((name, value) for name, value in scope["headers"] if name == b"x-request-id")
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _user_id(scope: dict[str, Any]) -> uuid.UUID | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            try:
                claims = jwt.decode(value[7:].decode(), KEY, algorithms=["HS256"], issuer="keel")
            except jwt.PyJWTError:
                return None
            if claims.get("type") != "access":
                return None
            return uuid.UUID(claims["sub"])
    return None


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if pool is not None:
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert pool is not None
    path: str = scope["path"]
    if path == "/health":
        await _send(send, 200, b'{"status":"ok"}', scope)
        return
    user_id = _user_id(scope)
    if user_id is None:
        await _send(send, 401, b'{"code":"UNAUTHORIZED"}', scope)
        return
    method = scope["method"]
    if path == "/api/v1/projects" and method == "GET":
        limit, page = 20, 1
        async with pool.acquire() as conn:
            rows = await conn.fetch(LIST_SQL, user_id, limit, (page - 1) * limit)
            total = await conn.fetchval(COUNT_SQL, user_id)
        body = {
            "data": [_project(r) for r in rows],
            "pagination": {
                "page": page,
                "limit": limit,
                "total": total,
                "totalPages": -(-total // limit),
                "nextCursor": None,
            },
        }
        await _send(send, 200, orjson.dumps(body), scope)
    elif path == "/api/v1/projects" and method == "POST":
        data = orjson.loads(await _read_body(receive))
        now = datetime.now(UTC)
        new_id = uuid.uuid4()
        row = {
            "id": new_id,
            "user_id": user_id,
            "name": data["name"].strip(),
            "description": data.get("description"),
            "status": "active",
            "created_at": now,
            "updated_at": now,
        }
        body = orjson.dumps(_project(row))
        async with pool.acquire() as conn:
            await conn.execute(
                INSERT_SQL,
                new_id,
                user_id,
                data["name"].strip(),
                data.get("description"),
                now,
                body.decode(),
            )
        await _send(send, 201, body, scope)
    elif path.startswith("/api/v1/projects/") and method == "GET":
        try:
            project_id = uuid.UUID(path.rsplit("/", 1)[1])
        except ValueError:
            await _send(send, 404, b'{"code":"NOT_FOUND"}', scope)
            return
        async with pool.acquire() as conn:
            row = await conn.fetchrow(GET_SQL, project_id, user_id)
        if row is None:
            await _send(send, 404, b'{"code":"NOT_FOUND"}', scope)
        else:
            await _send(send, 200, orjson.dumps(_project(row)), scope)
    elif path == "/api/v1/auth/profile" and method == "GET":
        async with pool.acquire() as conn:
            row = await conn.fetchrow(PROFILE_SQL, user_id)
        if row is None:
            await _send(send, 401, b'{"code":"UNAUTHORIZED"}', scope)
        else:
            profile = {
                "id": str(row["id"]),
                "email": row["email"],
                "name": row["name"],
                "role": row["role"],
                "createdAt": _iso(row["created_at"]),
            }
            await _send(send, 200, orjson.dumps(profile), scope)
    else:
        await _send(send, 404, b'{"code":"NOT_FOUND"}', scope)
