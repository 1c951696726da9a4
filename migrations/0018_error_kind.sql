-- error_kind (CONTRACT §7) is written by whoever records the attempt, as a value the sender
-- decided from the failure's types (the HTTP status, the error's source chain: see
-- src/outbound/failure.rs), instead of being generated from the wording of the `error`
-- text. A reworded library message can no longer change a partner's error_kind; the text
-- stays as it was, for people.
--
-- The generated column becomes a plain one: DROP EXPRESSION keeps every stored value, so
-- the attempts recorded so far keep the kinds the old expression (0011) gave them, without
-- rewriting the table.
-- The kinds of CONTRACT §7 (and `internal`, `other`), as `model::ErrorKind` names them.
CREATE FUNCTION callbackd_is_error_kind(kind text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN kind IN ('timeout', 'dns', 'connect', 'tls', 'redirect', 'http_4xx', 'http_5xx',
                    'auth_rejected', 'body_too_large', 'forbidden_target', 'auth', 'internal',
                    'other');

ALTER TABLE delivery_attempts ALTER COLUMN error_kind DROP EXPRESSION;
ALTER TABLE delivery_attempts
    ADD CONSTRAINT delivery_attempts_error_kind_known CHECK (callbackd_is_error_kind(error_kind)),
    -- A failed attempt has a kind, a successful one has none.
    ADD CONSTRAINT delivery_attempts_error_kind_with_error
        CHECK ((error_kind IS NULL) = (error IS NULL));

-- Test callbacks (POST /v1/endpoints/{id}/test) show the same kind; it was computed from
-- the text (as 0011's expression did) when they were listed. The rows recorded so far get it
-- the same way: the first prefix that matches, else the status, else `auth` or `other`.
ALTER TABLE endpoint_tests ADD COLUMN error_kind text;
UPDATE endpoint_tests t SET error_kind = coalesce(
        (SELECT p.kind
         FROM (VALUES (1, 'internal%', 'internal'), (2, 'timeout%', 'timeout'),
                      (3, 'dns%', 'dns'), (4, 'connect%', 'connect'), (5, 'tls%', 'tls'),
                      (6, 'redirect%', 'redirect'),
                      (7, 'forbidden target%', 'forbidden_target'),
                      (8, 'auth rejected%', 'auth_rejected')) AS p(n, pattern, kind)
         WHERE t.error LIKE p.pattern
         ORDER BY p.n LIMIT 1),
        CASE WHEN t.status_code = 413 THEN 'body_too_large'
             WHEN t.status_code BETWEEN 400 AND 499 THEN 'http_4xx'
             WHEN t.status_code BETWEEN 500 AND 599 THEN 'http_5xx'
             WHEN t.error LIKE 'auth%' THEN 'auth'
             ELSE 'other' END)
    WHERE t.error IS NOT NULL;
ALTER TABLE endpoint_tests
    ADD CONSTRAINT endpoint_tests_error_kind_known CHECK (callbackd_is_error_kind(error_kind)),
    ADD CONSTRAINT endpoint_tests_error_kind_with_error
        CHECK ((error_kind IS NULL) = (error IS NULL));
