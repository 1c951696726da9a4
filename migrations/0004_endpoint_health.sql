-- Endpoint health is read from the attempt log: the last 2xx and the failed attempts since.
-- Attempts carry their endpoint so that this is an index range scan, not a join over every
-- delivery the endpoint ever had.
ALTER TABLE delivery_attempts ADD COLUMN endpoint_id uuid;
UPDATE delivery_attempts a SET endpoint_id = d.endpoint_id
FROM deliveries d WHERE d.id = a.delivery_id;
CREATE INDEX delivery_attempts_endpoint_idx ON delivery_attempts (endpoint_id, id DESC);
CREATE INDEX delivery_attempts_endpoint_ok_idx ON delivery_attempts (endpoint_id, id DESC)
    WHERE status_code BETWEEN 200 AND 299;

-- Pending/dead counts per endpoint without visiting delivered rows.
CREATE INDEX deliveries_endpoint_open_idx ON deliveries (endpoint_id, state)
    WHERE state <> 'delivered';
