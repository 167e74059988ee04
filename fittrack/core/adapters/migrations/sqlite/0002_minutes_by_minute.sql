-- A minute keeps the local day any source first placed it on: looked up by minute across sources.

CREATE INDEX minute_values_by_minute ON minute_values (user_id, metric, minute);
