"""Schema 12 of the embedded database: a minute that two sources left on two local days keeps only the earlier.

Before the day-placement rule moved into the domain (fittrack.core.domain.placement), the embedded store
let each source pin only its own minutes, so after a move to another time zone a minute could count on two
days. The work is the metric store's own (sqlite_metrics.keep_each_minute_on_one_day): it places the stored
minutes again with the domain's rule and recomputes the figures of the days that changed.
"""

from __future__ import annotations

import sqlite3

from fittrack.core.adapters.sqlite_metrics import keep_each_minute_on_one_day


def migrate(conn: sqlite3.Connection) -> None:
    keep_each_minute_on_one_day(conn)
