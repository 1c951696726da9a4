-- Status filters: an endpoint may narrow proposal.status to the statuses it wants
-- (`statuses`, 0–11) and schedule.event to the TipoEvento it wants (`schedule_types`, 1–6).
-- NULL means all. Every fan-out (callbackd_enqueue() for SQL callers, and the API's set-based
-- insert) asks the same function, inside the same statement: no extra round trip.

ALTER TABLE endpoints ADD COLUMN statuses smallint[]
    CHECK (statuses IS NULL OR (cardinality(statuses) > 0 AND statuses <@ ARRAY[0,1,2,3,4,5,6,7,8,9,10,11]::smallint[]));
ALTER TABLE endpoints ADD COLUMN schedule_types smallint[]
    CHECK (schedule_types IS NULL OR (cardinality(schedule_types) > 0 AND schedule_types <@ ARRAY[1,2,3,4,5,6]::smallint[]));

-- True when an endpoint with these filters wants a notification of this event, status and
-- body. Inlined by the planner (a plain SQL expression).
CREATE FUNCTION callbackd_filter_passes(statuses smallint[], schedule_types smallint[],
                                        event_type text, status integer, body json)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE $3
        WHEN 'proposal.status' THEN $1 IS NULL OR $4 = ANY ($1)
        WHEN 'schedule.event' THEN $2 IS NULL OR ($5 ->> 'TipoEvento') = ANY ($2::text[])
        ELSE true
    END;
$$;

CREATE OR REPLACE FUNCTION callbackd_enqueue(
    partner_id   uuid,
    environment  text,
    event_type   text,
    proposal     uuid    DEFAULT NULL,
    status       integer DEFAULT NULL,
    identifier   text    DEFAULT NULL,
    body         json    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    notification_id uuid;
BEGIN
    IF callbackd_enqueue.partner_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM partners p
        WHERE p.id = callbackd_enqueue.partner_id AND p.deleted_at IS NULL
    ) THEN
        RAISE EXCEPTION 'unknown partner_id: %', callbackd_enqueue.partner_id
            USING ERRCODE = 'CB001', COLUMN = 'partner_id';
    END IF;
    IF callbackd_enqueue.environment IS NULL
       OR callbackd_enqueue.environment NOT IN ('homologation', 'production') THEN
        RAISE EXCEPTION 'environment must be homologation or production, got %',
            coalesce(callbackd_enqueue.environment, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'environment';
    END IF;
    IF callbackd_enqueue.event_type IS NULL
       OR NOT (callbackd_enqueue.event_type = ANY (callbackd_event_types())) THEN
        RAISE EXCEPTION 'unknown event_type: %', coalesce(callbackd_enqueue.event_type, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'event_type';
    END IF;
    IF callbackd_enqueue.body IS NOT NULL AND json_typeof(callbackd_enqueue.body) <> 'object' THEN
        RAISE EXCEPTION 'body must be a JSON object'
            USING ERRCODE = 'CB001', COLUMN = 'body';
    END IF;

    IF callbackd_enqueue.event_type = 'proposal.status' THEN
        IF callbackd_enqueue.proposal IS NULL THEN
            RAISE EXCEPTION 'proposal is required for proposal.status'
                USING ERRCODE = 'CB001', COLUMN = 'proposal';
        END IF;
        IF callbackd_enqueue.status IS NULL OR callbackd_enqueue.status NOT BETWEEN 0 AND 11 THEN
            RAISE EXCEPTION 'status must be a proposal status id from 0 to 11, got %',
                coalesce(callbackd_enqueue.status::text, 'NULL')
                USING ERRCODE = 'CB001', COLUMN = 'status';
        END IF;
        IF length(callbackd_enqueue.identifier) > 200 THEN
            RAISE EXCEPTION 'identifier is longer than 200 characters'
                USING ERRCODE = 'CB001', COLUMN = 'identifier';
        END IF;
    ELSE
        IF callbackd_enqueue.body IS NULL THEN
            RAISE EXCEPTION 'body is required for %', callbackd_enqueue.event_type
                USING ERRCODE = 'CB001', COLUMN = 'body';
        END IF;
        IF callbackd_enqueue.proposal IS NOT NULL OR callbackd_enqueue.status IS NOT NULL
           OR callbackd_enqueue.identifier IS NOT NULL THEN
            RAISE EXCEPTION 'proposal, status and identifier belong to proposal.status only'
                USING ERRCODE = 'CB001', COLUMN = 'event_type';
        END IF;
    END IF;

    PERFORM callbackd_validate_body(callbackd_enqueue.event_type, callbackd_enqueue.body);

    INSERT INTO notifications (partner_id, environment, event_type, proposal, status, identifier, body)
    VALUES (callbackd_enqueue.partner_id, callbackd_enqueue.environment, callbackd_enqueue.event_type,
            callbackd_enqueue.proposal, callbackd_enqueue.status, callbackd_enqueue.identifier,
            callbackd_enqueue.body)
    RETURNING id INTO notification_id;

    INSERT INTO deliveries (notification_id, endpoint_id, partner_id, environment, event_type, proposal)
    SELECT notification_id, e.id, e.partner_id, e.environment, callbackd_enqueue.event_type,
           callbackd_enqueue.proposal
    FROM endpoints e
    WHERE e.partner_id = callbackd_enqueue.partner_id
      AND e.environment = callbackd_enqueue.environment
      AND e.deleted_at IS NULL
      AND e.enabled
      AND callbackd_enqueue.event_type = ANY (e.event_types)
      AND callbackd_filter_passes(e.statuses, e.schedule_types, callbackd_enqueue.event_type,
                                  callbackd_enqueue.status, callbackd_enqueue.body)
    ORDER BY e.id;

    IF FOUND THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN notification_id;
END;
$$;
