-- Fewer writes per delivery on the hot paths: measured with EXPLAIN (ANALYZE, BUFFERS, WAL) on
-- a completion of 200 deliveries (docs/performance.md), the foreign-key check of each attempt
-- row cost 8 µs of the 60 µs a delivery's completion took, and every enqueued delivery paid
-- two more (its notification, its endpoint).
--
-- These three references hold by construction, in the one module that writes each table:
-- - a delivery is inserted by the fan-out statement that selects its endpoint and follows
--   the insert of its notification in the same transaction; endpoints and partners are
--   never deleted (soft delete), and retention deletes a notification only once no delivery
--   refers to it (store/retention.rs);
-- - an attempt row is written by the statement that holds its delivery's queue row, and
--   retention deletes a delivery's attempts in the statement that deletes the delivery.
-- River's and Oban's job tables carry no foreign keys for the same reason.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_endpoint_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;

-- One index per attempt fewer: the attempts of a delivery are found through the index that
-- makes an attempt row unique per lease (NULL lease tokens, from before migration 0011,
-- never conflict), and a delivery has a handful of attempts to sort by id.
CREATE UNIQUE INDEX delivery_attempts_lease_idx ON delivery_attempts (delivery_id, lease_token);
DROP INDEX delivery_attempts_once_idx;
DROP INDEX delivery_attempts_delivery_idx;
