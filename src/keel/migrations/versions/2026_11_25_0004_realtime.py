"""realtime: outbox purge watermark, SSE tickets, per-owner resume index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Resuming a non-admin subscriber reads only its own events, in id order.
    op.create_index("ix_events_owner_id_id", "events", ["owner_id", "id"])
    op.create_table(
        "event_watermarks",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_watermarks")),
    )
    op.create_table(
        "event_tickets",
        sa.Column("ticket_hash", sa.String(64), nullable=False),
        sa.Column("sealed_token", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("ticket_hash", name=op.f("pk_event_tickets")),
    )
    op.create_index("ix_event_tickets_expires_at", "event_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_event_tickets_expires_at", table_name="event_tickets")
    op.drop_table("event_tickets")
    op.drop_table("event_watermarks")
    op.drop_index("ix_events_owner_id_id", table_name="events")
