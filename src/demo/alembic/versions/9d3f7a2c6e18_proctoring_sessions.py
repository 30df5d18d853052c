"""proctoring sessions"""
from alembic import op
import sqlalchemy as sa

revision = "9d3f7a2c6e18"
down_revision = "4f2a9c1e7b3d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "proctoring_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "attempt_id", sa.Integer, sa.ForeignKey("exam_attempts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_proctoring_sessions_attempt_id", "proctoring_sessions", ["attempt_id"])


def downgrade():
    op.drop_index("ix_proctoring_sessions_attempt_id", table_name="proctoring_sessions")
    op.drop_table("proctoring_sessions")
