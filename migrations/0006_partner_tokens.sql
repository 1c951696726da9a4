-- Partner self-service (CONTRACT §8): partner tokens, the per-partner HTTPS guard, the audit
-- log of configuration changes, and the test callbacks partners send to their endpoints.

-- Operators may let a partner register plain-http production endpoints (a partner-made
-- production endpoint must be https otherwise). Operator-made endpoints are not bound by it.
ALTER TABLE partners ADD COLUMN production_requires_https boolean NOT NULL DEFAULT true;

-- A partner's API tokens. The token itself is shown once, at creation; only its SHA-256 is
-- kept. `prefix` (the token's first characters, "cbk_" + 12 hex digits) identifies it in
-- lists and logs without revealing it.
CREATE TABLE partner_tokens (
    id            uuid PRIMARY KEY DEFAULT callbackd_uuid_v7(),
    partner_id    uuid NOT NULL REFERENCES partners (id),
    prefix        text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Updated at most once a minute, so that a busy token does not write on every request.
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX partner_tokens_partner_idx ON partner_tokens (partner_id, created_at);

-- Every change to partners, endpoints and tokens, by whom. Secrets never get here: endpoints
-- are recorded as the API shows them (auth as its public view), tokens by id and prefix.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    -- 'operator' or 'partner:<partner id>'
    actor        text NOT NULL,
    -- The partner token that made the change, for actor 'partner:…'.
    token_id     uuid,
    -- e.g. 'endpoint.create', 'endpoint.update', 'endpoint.delete', 'token.revoke'
    action       text NOT NULL,
    target_type  text NOT NULL CHECK (target_type IN ('partner', 'endpoint', 'token')),
    target_id    uuid NOT NULL,
    -- The partner the target belongs to (the partner itself for target_type 'partner').
    partner_id   uuid NOT NULL,
    before       jsonb,
    after        jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_partner_idx ON audit_log (partner_id, at DESC, id DESC);

-- Test callbacks (POST /v1/endpoints/{id}/test): one real attempt each, kept apart from the
-- delivery queue so that a test is never retried, counted in queue metrics, or replayed.
CREATE TABLE endpoint_tests (
    -- Also the X-Callback-Id the test request carried.
    id             uuid PRIMARY KEY,
    endpoint_id    uuid NOT NULL REFERENCES endpoints (id),
    partner_id     uuid NOT NULL,
    event_type     text NOT NULL,
    actor          text NOT NULL,
    token_id       uuid,
    started_at     timestamptz NOT NULL,
    duration_ms    integer NOT NULL,
    delivered      boolean NOT NULL,
    status_code    integer,
    error          text,
    response_body  text
);
CREATE INDEX endpoint_tests_endpoint_idx ON endpoint_tests (endpoint_id, started_at DESC);
