-- The kind of each failed attempt (CONTRACT §7), derived from what the sender wrote: every
-- error the sender produces starts with its kind ("timeout: …", "dns: …", "connect: …",
-- "tls: …", "redirect: …", "auth rejected: …", "forbidden target: …", "http 503"). A
-- generated column, so every writer (batch completion, tests, older rows) gets it for free.
ALTER TABLE delivery_attempts ADD COLUMN error_kind text GENERATED ALWAYS AS (
    CASE
        WHEN error IS NULL THEN NULL
        WHEN error LIKE 'timeout%' THEN 'timeout'
        WHEN error LIKE 'dns%' THEN 'dns'
        WHEN error LIKE 'connect%' THEN 'connect'
        WHEN error LIKE 'tls%' THEN 'tls'
        WHEN error LIKE 'redirect%' THEN 'redirect'
        WHEN error LIKE 'forbidden target%' THEN 'forbidden_target'
        WHEN error LIKE 'auth rejected%' THEN 'auth_rejected'
        WHEN status_code = 413 THEN 'body_too_large'
        WHEN status_code BETWEEN 400 AND 499 THEN 'http_4xx'
        WHEN status_code BETWEEN 500 AND 599 THEN 'http_5xx'
        WHEN error LIKE 'auth%' THEN 'auth'
        ELSE 'other'
    END
) STORED;

-- Retention: the purge walks delivered/canceled rows by age, and notifications by age.
CREATE INDEX deliveries_finished_idx ON deliveries (updated_at)
    WHERE state IN ('delivered', 'canceled');
CREATE INDEX notifications_created_idx ON notifications (created_at);
