"""projects: search columns (trigram GIN on PostgreSQL), keyset indexes, idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True)
TS = sa.DateTime(timezone=True)
LIVE = sa.text("deleted_at IS NULL")

KEYSET_INDEXES: list[tuple[str, list[sa.TextClause | str]]] = [
    ("ix_projects_live_owner_created", ["user_id", sa.text("created_at DESC"), sa.text("id DESC")]),
    ("ix_projects_live_owner_updated", ["user_id", sa.text("updated_at DESC"), sa.text("id DESC")]),
    ("ix_projects_live_owner_name", ["user_id", "name", "id"]),
    ("ix_projects_live_created", [sa.text("created_at DESC"), sa.text("id DESC")]),
]


def _fold(value: str) -> str:
    # The same folding as keel.projects.listing.fold (kept here: migrations are frozen code).
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold())


def _backfill_search_columns() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Row-level security hides every project from a transaction that names no actor.
        bind.execute(sa.text("SELECT set_config('keel.role', 'system', true)"))
    projects = sa.table(
        "projects",
        sa.column("id", UUID),
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("search_name", sa.Text),
        sa.column("search_description", sa.Text),
    )
    rows = bind.execute(sa.select(projects.c.id, projects.c.name, projects.c.description)).all()
    for row in rows:
        bind.execute(
            projects.update()
            .where(projects.c.id == row.id)
            .values(
                search_name=_fold(row.name),
                search_description=None if row.description is None else _fold(row.description),
            )
        )


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite >= 3.35): no table rebuild that would have to carry the
    # partial indexes and foreign keys across.
    op.add_column(
        "projects",
        sa.Column("search_name", sa.Text(), nullable=False, server_default=sa.text("''")),
    )
    op.add_column("projects", sa.Column("search_description", sa.Text(), nullable=True))
    _backfill_search_columns()

    for name, columns in KEYSET_INDEXES:
        op.create_index(name, "projects", columns, postgresql_where=LIVE, sqlite_where=LIVE)
    op.create_index(
        "ix_projects_deleted_at",
        "projects",
        ["deleted_at"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
    )

    if op.get_bind().dialect.name == "postgresql":
        # Substring search (LIKE '%q%') on the folded columns uses these, not a seq scan.
        # SQLite has no equivalent: it scans the user's rows (see keel.projects.repository).
        # fastupdate off: with the pending list on, rows inserted since the last vacuum are
        # costed (and searched) linearly, and the planner falls back to a seq scan after a
        # burst of inserts; projects are written rarely, so pay at insert time instead.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_projects_search_name_trgm ON projects "
            "USING gin (search_name gin_trgm_ops) WITH (fastupdate = off)"
        )
        op.execute(
            "CREATE INDEX ix_projects_search_description_trgm ON projects "
            "USING gin (search_description gin_trgm_ops) WITH (fastupdate = off)"
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("location", sa.String(255), nullable=True),
        sa.Column("etag", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            ondelete="CASCADE",
            name=op.f("fk_idempotency_keys_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_projects_search_description_trgm")
        op.execute("DROP INDEX IF EXISTS ix_projects_search_name_trgm")
        # The pg_trgm extension stays: other objects in the database may have come to use it.
    op.drop_index("ix_projects_deleted_at", table_name="projects")
    for name, _columns in reversed(KEYSET_INDEXES):
        op.drop_index(name, table_name="projects")
    op.drop_column("projects", "search_description")
    op.drop_column("projects", "search_name")
