-- Trace context (README "Traces"): the W3C traceparent the platform's enqueue request carried,
-- validated by the API (NULL when absent or malformed), so that every attempt span can link
-- to the platform's trace. callbackd_enqueue() does not take one: SQL callers have no
-- request headers, their notifications keep NULL.
ALTER TABLE notifications ADD COLUMN traceparent text;

-- An endpoint opts in to receive a traceparent header (the attempt span's context) on its
-- callbacks; off by default, so a partner never sees trace ids it did not ask for.
ALTER TABLE endpoints ADD COLUMN propagate_trace_context boolean NOT NULL DEFAULT false;
