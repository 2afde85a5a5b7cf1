"""outbox without a global lock: relay-assigned event positions (ADR 0011).

Revision ID: 0006_outbox_position
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbox_position"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSEQUENCED = sa.text("position IS NULL")


def upgrade() -> None:
    op.add_column("events", sa.Column("position", sa.BigInteger(), nullable=True))
    # Rows written under the old advisory lock already have ids in commit order.
    op.execute("UPDATE events SET position = id")
    op.create_index("uq_events_position", "events", ["position"], unique=True)
    op.create_index(
        "ix_events_unsequenced",
        "events",
        ["id"],
        postgresql_where=UNSEQUENCED,
        sqlite_where=UNSEQUENCED,
    )
    # Resuming a non-admin subscriber reads only its own events, in position order.
    op.create_index("ix_events_owner_id_position", "events", ["owner_id", "position"])
    op.drop_index("ix_events_owner_id_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_owner_id_id", "events", ["owner_id", "id"])
    op.drop_index("ix_events_owner_id_position", table_name="events")
    op.drop_index("ix_events_unsequenced", table_name="events")
    op.drop_index("uq_events_position", table_name="events")
    op.drop_column("events", "position")
