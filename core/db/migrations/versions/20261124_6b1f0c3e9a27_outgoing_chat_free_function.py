"""outgoing_chat_free(): a reply's chat lock and queue check, for a one-statement save

Revision ID: 6b1f0c3e9a27
Revises: 4219e8e7da13
Create Date: 2026-11-24 00:00:00

PostgreSQL only (SQLite has one writer and needs no chat lock). A reply to someone talking
now is saved already claimed when its chat is free: held by this transaction (an advisory
lock) and with nothing queued or being sent. The check has to see what committed before the
lock was taken, so it cannot share one statement's snapshot with the lock; a function's
statements each take a snapshot of their own (read committed), so the lock, the check and the
insert go in one round trip (core/db/outgoing_rows.py).
"""
from alembic import op


revision = '6b1f0c3e9a27'
down_revision = '4219e8e7da13'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE FUNCTION outgoing_chat_free(lock_key bigint, bot varchar, chat varchar)
        RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            IF NOT pg_try_advisory_xact_lock(lock_key) THEN
                RETURN false;
            END IF;
            -- a statement of its own: its snapshot is taken after the lock
            -- (the same question as core/db/outgoing_rows.QUEUED)
            RETURN NOT EXISTS (
                SELECT 1 FROM outgoing_messages
                WHERE bot_id = bot AND chat_id = chat AND status IN ('queued', 'sending'));
        END
        $$
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP FUNCTION outgoing_chat_free(bigint, varchar, varchar)")
