"""identity: TOTP replay protection and an index for expiring sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The last TOTP time step accepted for a user: a code is good once, not for its 30 s.
    op.add_column("users", sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
    # Listing a user's live sessions and purging expired rows both filter on expiry.
    op.create_index("ix_auth_sessions_expires_at", "auth_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_sessions_expires_at", table_name="auth_sessions")
    # A plain DROP COLUMN (SQLite >= 3.35 has it): no table rebuild under the foreign keys.
    op.drop_column("users", "mfa_last_step")
