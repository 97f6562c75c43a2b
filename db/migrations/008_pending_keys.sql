-- iothub schema, version 8: keys waiting for a certificate signed outside the hub (an
-- external root, issue 15). `iothubd init --external-root` creates the issuing CA key and
-- the server key, seals them like every other key (labels "iothub ca:issuing" and
-- "iothub server-key") and keeps their CSRs here; `iothubd ca import` moves each key into
-- cas / certificates next to its signed certificate and deletes the row.
CREATE TABLE pending_keys (
    role        text PRIMARY KEY CHECK (role IN ('issuing', 'server')),
    key_type    text NOT NULL,
    key_sealed  bytea NOT NULL,
    csr_der     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
