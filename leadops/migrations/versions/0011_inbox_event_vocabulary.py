"""inbox event vocabulary: what each event means (`event`) and its message (`touch_id`)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Adds the columns and fills them in for the events already applied, from what the rescore
run of revision 0010 stored: the provider's type and payload, and for what depended on
the scoring config at the time (an inbound WhatsApp keyword, a Twilio error code that
meant an invalid number) what it recorded having applied. The translation is written out
here as it stood at this revision; from now on leadops.engagement.resolve.translate and
touch_of fill the columns as each event is applied.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import leadops.models


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
INBOX = sa.table(
    'inbox',
    sa.column('id', sa.Integer),
    sa.column('source', sa.String),
    sa.column('kind', sa.String),
    sa.column('payload', sa.JSON),
    sa.column('received_at', leadops.models.UTCDateTime(timezone=True)),
    sa.column('status', sa.String),
    sa.column('lead_id', sa.Integer),
    sa.column('result', sa.String),
    sa.column('event', sa.String),
    sa.column('touch_id', sa.Integer),
)
TOUCHES = sa.table(
    'touches',
    sa.column('id', sa.Integer),
    sa.column('lead_id', sa.Integer),
    sa.column('channel', sa.String),
    sa.column('provider_message_id', sa.String),
    sa.column('sent_at', leadops.models.UTCDateTime(timezone=True)),
)
SENDGRID = {
    'click': 'clicked',
    'delivered': 'delivered',
    'spamreport': 'spam',
    'unsubscribe': 'unsubscribed',
    'group_unsubscribe': 'group_unsubscribed',
    'group_resubscribe': 'resubscribed',
}
ADDRESS_DROPS = ('bounced address', 'invalid', 'unsubscribed address', 'spam reporting')
TWILIO = {'sent': 'sent', 'delivered': 'delivered', 'read': 'read', 'failed': 'failed',
          'undelivered': 'failed'}
LAST_SENT = {'twilio_inbound': 'whatsapp', 'unsubscribe': None}


def _number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _event(row: Any) -> str | None:
    p, kind, result = row.payload or {}, row.kind, row.result or ''
    if row.source == 'sendgrid':
        if kind == 'open':
            return 'machine_open' if p.get('sg_machine_open') is True else 'opened'
        if kind == 'bounce':
            return 'blocked' if p.get('type') == 'blocked' else 'bounced'
        if kind == 'dropped':
            reason = str(p.get('reason', '')).lower()
            return 'dropped' if any(m in reason for m in ADDRESS_DROPS) else 'failed'
        return SENDGRID.get(kind, 'other')
    if row.source == 'twilio_status':
        meaning = TWILIO.get(kind, 'other')
        return 'invalid_number' if meaning == 'failed' and '(invalid_number)' in result else meaning
    if row.source == 'twilio_inbound':
        # classified by the keywords of the time; what it applied says which
        if row.status != 'processed':
            return None
        if 'whatsapp_opt_out' in result:
            return 'opted_out'
        if result.startswith('whatsapp opt-in'):
            return 'resubscribed'
        return 'replied'
    return {'unsubscribe': 'unsubscribed', 'form': 'hand_raise', 'site': 'activity'}.get(
        row.source, 'other'
    )


def _touch(row: Any, touches: dict[int, Any], by_sid: dict[str, Any], sent: dict) -> int | None:
    if row.status != 'processed' or row.lead_id is None:
        return None
    p = row.payload or {}
    if row.source in LAST_SENT:
        channel, last = LAST_SENT[row.source], None
        for sent_at, touch_id, touch_channel in sent.get(row.lead_id, []):
            if sent_at > row.received_at:
                break
            if channel is None or touch_channel == channel:
                last = touch_id
        return last
    if row.source not in ('sendgrid', 'twilio_status'):
        return None
    touch = touches.get(_number(p.get('touch_id')))
    if touch is None and row.source == 'twilio_status':
        touch = by_sid.get(str(p.get('MessageSid', '')))
    return touch.id if touch is not None and touch.lead_id == row.lead_id else None


def _backfill(connection: sa.Connection) -> None:
    i, t = INBOX.c, TOUCHES.c
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(i.id, i.source, i.kind, i.payload, i.received_at, i.status, i.lead_id,
                      i.result)
            .where(i.id > last_id, i.status.in_(['processed', 'ignored']))
            .order_by(i.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        ids = {_number((r.payload or {}).get('touch_id')) for r in rows} - {None}
        sids = {str((r.payload or {}).get('MessageSid')) for r in rows
                if r.source == 'twilio_status'}
        columns = (t.id, t.lead_id, t.provider_message_id)
        touches = {r.id: r for r in connection.execute(sa.select(*columns).where(t.id.in_(ids)))}
        by_sid = {
            r.provider_message_id: r
            for r in connection.execute(sa.select(*columns).where(t.provider_message_id.in_(sids)))
        }
        leads = {r.lead_id for r in rows if r.source in LAST_SENT and r.lead_id is not None}
        sent: dict[int, list] = {}
        for lead_id, sent_at, touch_id, channel in connection.execute(
            sa.select(t.lead_id, t.sent_at, t.id, t.channel)
            .where(t.lead_id.in_(leads), t.sent_at.is_not(None))
            .order_by(t.sent_at, t.id)
        ):
            sent.setdefault(lead_id, []).append((sent_at, touch_id, channel))
        updates = [
            {'iid': r.id, 'ev': _event(r), 'tid': _touch(r, touches, by_sid, sent)} for r in rows
        ]
        connection.execute(
            sa.update(INBOX)
            .where(i.id == sa.bindparam('iid'))
            .values(event=sa.bindparam('ev'), touch_id=sa.bindparam('tid')),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('touch_id', sa.Integer(), nullable=True))
    _backfill(op.get_bind())


def downgrade() -> None:
    # Not in batch mode: on SQLite that copies the table, which score_ledger refers to.
    # SQLite 3.35+ drops a plain column in place.
    op.drop_column('inbox', 'touch_id')
    op.drop_column('inbox', 'event')
