"""partial touch indexes on sent ids and times; room on leads' pages for segment updates

`ix_touches_provider_message_id` and `ix_touches_sent_at` become partial indexes
(`WHERE ... IS NOT NULL`): a touch is planned pending, with neither set, so planning no
longer writes an index entry into either for every touch (millions of NULL entries that
no query reads). The queries that use them compare the column with a value
(`provider_message_id IN (...)` in the inbox resolver; `sent_at` ranges in the no-opens
pass and the simulated engagement), which PostgreSQL and SQLite both take as implying
`IS NOT NULL`, so they use the partial index as before.

On PostgreSQL `leads` gets fillfactor 50: half of each page is left free, so the
planner's segment update (segment and updated_at, neither indexed) is a HOT update on the
same page, with no new entry in any of the table's indexes. Half, because the first tick
after an import sets the segment of every lead on a page in one transaction, so every
row needs room for its second version (at 90, a tenth of those updates were HOT). The
space is the same once the leads are planned: a full page's updates take a second page
either way. Measured on 100,000 COPYed leads: 95% of the updates HOT instead of 0.2%,
WAL of seed and tick 220 MB instead of 259, the server's CPU for the tick 4.9 s instead
of 5.3. It applies to pages written from now on; existing pages stay as they are until
the table is rewritten (VACUUM FULL, or a dump and restore). SQLite has no fillfactor.

Downgrading puts back the full indexes and the default fillfactor.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = {'ix_touches_provider_message_id': 'provider_message_id', 'ix_touches_sent_at': 'sent_at'}
LEADS_FILLFACTOR = 50


def upgrade() -> None:
    for name, column in PARTIAL.items():
        where = sa.text(f'{column} IS NOT NULL')
        op.drop_index(name, table_name='touches')
        op.create_index(name, 'touches', [column], sqlite_where=where, postgresql_where=where)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER TABLE leads SET (fillfactor = {LEADS_FILLFACTOR})')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE leads RESET (fillfactor)')
    for name, column in PARTIAL.items():
        op.drop_index(name, table_name='touches')
        op.create_index(name, 'touches', [column])
