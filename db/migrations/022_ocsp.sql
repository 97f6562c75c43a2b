-- Delegated OCSP signing certificates (RFC 6960 §4.2.2.2) that serve issued, one per CA
-- and node at a time, renewed before they expire. Their keys exist only in the memory of the
-- process that made them (docs/ca.md "OCSP"): nothing secret is stored here.
CREATE TABLE ocsp_signers (
    serial      text PRIMARY KEY CHECK (serial ~ '^[0-9A-F]+$'),
    ca_id       integer NOT NULL REFERENCES cas (id),
    der         bytea NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (not_after > not_before)
);
