-- The ordering check is written inline in the claim (store/queue.rs, SENDABLE): PostgreSQL
-- does not inline a SQL function around a sub-select, and calling it per candidate row cost
-- about 40 µs each.
DROP FUNCTION callbackd_is_blocked(uuid, text, bigint);
