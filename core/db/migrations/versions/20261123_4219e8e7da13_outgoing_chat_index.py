"""outgoing chat index

Revision ID: 4219e8e7da13
Revises: 1a9d5192bb43
Create Date: 2026-11-23 06:20:48.074968
"""
from alembic import op


revision = '4219e8e7da13'
down_revision = '1a9d5192bb43'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outgoing_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outgoing_chat', ['bot_id', 'chat_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outgoing_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outgoing_chat')

