-- The console's timeline (GET /v1/stats/timeline) reads attempts of the last hour or day.
-- Attempts are appended in time order, so a BRIN index on started_at (a few pages for
-- millions of rows, next to nothing per insert) lets that scan read only the window's
-- blocks instead of the whole table. A B-tree would cost every attempt insert more.
CREATE INDEX delivery_attempts_started_brin ON delivery_attempts USING brin (started_at);
