"""OpenID Connect sign-in (SPEC §11): linked provider identities, sign-ins under way (state,
nonce, PKCE verifier) and the one-time codes handed to the front end.

Revision ID: 0010_oidc
Revises: 0009_email_tokens
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_oidc"
down_revision: str | None = "0009_email_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oidc_identities",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oidc_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("provider", "subject", name=op.f("pk_oidc_identities")),
    )
    op.create_index("ix_oidc_identities_user_id", "oidc_identities", ["user_id"])
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("binding_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oidc_logins")),
    )
    op.create_index("ix_oidc_logins_expires_at", "oidc_logins", ["expires_at"])
    op.create_table(
        "oidc_handoffs",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oidc_handoffs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_oidc_handoffs")),
    )
    op.create_index("ix_oidc_handoffs_expires_at", "oidc_handoffs", ["expires_at"])


def downgrade() -> None:
    op.drop_table("oidc_handoffs")
    op.drop_table("oidc_logins")
    op.drop_table("oidc_identities")
