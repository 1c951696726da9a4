-- Ordered delivery per proposal. An endpoint with ordering = 'per_proposal' gets, for each
-- (endpoint, ordering key), deliveries numbered 1, 2, 3 … in commit order; a delivery is not
-- claimed while an earlier one of its key is still pending (due, retrying or in flight).
-- The key is the proposal GUID for proposal.status and NroProposta for schedule.event;
-- other events are unordered.

ALTER TABLE endpoints ADD COLUMN ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'per_proposal'));
UPDATE endpoints SET ordering = 'per_proposal'
WHERE event_types && ARRAY['proposal.status', 'schedule.event'];

ALTER TABLE deliveries ADD COLUMN ordering_key text;
ALTER TABLE deliveries ADD COLUMN sequence bigint;
CREATE INDEX deliveries_ordering_idx ON deliveries (endpoint_id, ordering_key, sequence)
    WHERE ordering_key IS NOT NULL;

-- The last sequence number handed out per (endpoint, key). The row lock taken by the upsert
-- also orders concurrent enqueues of one key: the second waits for the first to commit.
CREATE TABLE ordering_sequences (
    endpoint_id    uuid NOT NULL,
    ordering_key   text NOT NULL,
    last_sequence  bigint NOT NULL,
    PRIMARY KEY (endpoint_id, ordering_key)
);

CREATE FUNCTION callbackd_number_delivery() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    endpoint_ordering text;
    key text;
BEGIN
    SELECT e.ordering INTO endpoint_ordering FROM endpoints e WHERE e.id = NEW.endpoint_id;
    IF endpoint_ordering IS DISTINCT FROM 'per_proposal' THEN
        RETURN NEW;
    END IF;
    IF NEW.event_type = 'proposal.status' THEN
        key := NEW.proposal::text;
    ELSIF NEW.event_type = 'schedule.event' THEN
        SELECT n.body ->> 'NroProposta' INTO key FROM notifications n WHERE n.id = NEW.notification_id;
    END IF;
    IF key IS NULL THEN
        RETURN NEW;
    END IF;
    INSERT INTO ordering_sequences AS s (endpoint_id, ordering_key, last_sequence)
    VALUES (NEW.endpoint_id, key, 1)
    ON CONFLICT (endpoint_id, ordering_key) DO UPDATE SET last_sequence = s.last_sequence + 1
    RETURNING s.last_sequence INTO NEW.sequence;
    NEW.ordering_key := key;
    RETURN NEW;
END;
$$;

CREATE TRIGGER deliveries_number BEFORE INSERT ON deliveries
    FOR EACH ROW EXECUTE FUNCTION callbackd_number_delivery();

-- True while an earlier delivery of the same (endpoint, key) is still pending. The claim and
-- the "when is the next one due" query both use it, so a blocked delivery never looks due.
CREATE FUNCTION callbackd_is_blocked(endpoint_id uuid, ordering_key text, sequence bigint)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT $2 IS NOT NULL AND EXISTS (
        SELECT 1 FROM deliveries p
        WHERE p.endpoint_id = $1 AND p.ordering_key = $2 AND p.sequence < $3
          AND p.state = 'pending'
    );
$$;
