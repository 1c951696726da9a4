-- callbackd schema: partners, their endpoints, notifications and the delivery queue.
--
-- Ids are UUIDv7 (time-ordered) so that the primary-key indexes stay append-mostly and ids
-- sort by creation time wherever they are generated: in the API or in callbackd_enqueue().

CREATE FUNCTION callbackd_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    -- 48-bit unix milliseconds, then version 7 and variant bits over random bits.
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid;
$$;

CREATE TABLE partners (
    id          uuid PRIMARY KEY DEFAULT callbackd_uuid_v7(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Partners and endpoints are soft-deleted: the delivery history of a financial event must
    -- outlive the configuration that produced it.
    deleted_at  timestamptz
);

CREATE TABLE endpoints (
    id            uuid PRIMARY KEY DEFAULT callbackd_uuid_v7(),
    partner_id    uuid NOT NULL REFERENCES partners (id),
    environment   text NOT NULL CHECK (environment IN ('homologation', 'production')),
    url           text NOT NULL,
    method        text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT')),
    event_types   text[] NOT NULL CHECK (cardinality(event_types) > 0),
    auth_type     text NOT NULL,
    -- What the API may show of the auth object (type and non-secret fields).
    auth_public   jsonb NOT NULL DEFAULT '{}',
    -- The whole auth object, AES-256-GCM sealed under CALLBACKD_SECRET_KEY (nonce || ciphertext).
    auth_sealed   bytea NOT NULL,
    timeout_ms    integer NOT NULL CHECK (timeout_ms > 0),
    max_attempts  integer NOT NULL CHECK (max_attempts > 0),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX endpoints_fanout_idx ON endpoints (partner_id, environment) WHERE deleted_at IS NULL;

CREATE TABLE notifications (
    id           uuid PRIMARY KEY DEFAULT callbackd_uuid_v7(),
    partner_id   uuid NOT NULL REFERENCES partners (id),
    environment  text NOT NULL CHECK (environment IN ('homologation', 'production')),
    event_type   text NOT NULL,
    proposal     uuid,
    status       smallint CHECK (status BETWEEN 0 AND 11),
    identifier   text,
    -- json, not jsonb: the partner receives the body byte for byte, key order kept.
    body         json,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (event_type <> 'proposal.status' OR (proposal IS NOT NULL AND status IS NOT NULL))
);

CREATE TABLE deliveries (
    id                uuid PRIMARY KEY DEFAULT callbackd_uuid_v7(),
    notification_id   uuid NOT NULL REFERENCES notifications (id),
    endpoint_id       uuid NOT NULL REFERENCES endpoints (id),
    -- Copied from the notification so operator filters need no join.
    partner_id        uuid NOT NULL,
    environment       text NOT NULL,
    event_type        text NOT NULL,
    proposal          uuid,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'delivered', 'dead', 'canceled')),
    -- A replay starts a new series; attempts count within the current series.
    series            integer NOT NULL DEFAULT 1,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- The lease: while locked_until is in the future one worker owns the row. A worker that
    -- dies leaves it to expire; lease_token makes a late completion of a lost lease a no-op.
    locked_until      timestamptz,
    lease_token       uuid,
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz
) WITH (
    -- Every delivery row is updated a few times in a short life: keep dead tuples few.
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);

-- The claim reads this index only: pending rows ordered by when they are next due
-- (the later of the scheduled time and the lease). Delivered/dead rows are not in it.
CREATE INDEX deliveries_due_idx ON deliveries ((greatest(next_attempt_at, locked_until)))
    WHERE state = 'pending';
-- Operator listings, newest first, keyset-paginated on (created_at, id).
CREATE INDEX deliveries_created_idx ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_partner_idx ON deliveries (partner_id, created_at DESC, id DESC);
CREATE INDEX deliveries_endpoint_idx ON deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX deliveries_state_idx ON deliveries (state, created_at DESC, id DESC)
    WHERE state <> 'delivered';
CREATE INDEX deliveries_notification_idx ON deliveries (notification_id);

CREATE TABLE delivery_attempts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id    uuid NOT NULL REFERENCES deliveries (id),
    series         integer NOT NULL,
    attempt        integer NOT NULL,
    started_at     timestamptz NOT NULL,
    duration_ms    integer NOT NULL,
    status_code    integer,
    error          text,
    -- The first 4 KiB of what the partner answered.
    response_body  text
);
CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, id);

-- Guards that CALLBACKD_SECRET_KEY is the key the stored secrets were sealed with.
CREATE TABLE keyring (
    id          integer PRIMARY KEY CHECK (id = 1),
    key_check   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
