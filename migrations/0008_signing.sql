-- Standard Webhooks signing keys of an endpoint, AES-256-GCM sealed like the auth object
-- (bound to the endpoint id + "signing"). NULL: the endpoint is not signed.
ALTER TABLE endpoints ADD COLUMN signing_sealed bytea;
