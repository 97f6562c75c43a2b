-- iothub schema, version 6: signed firmware images. Every image is verified at upload
-- against a registered signer (a detached signature over its SHA-256) and stored in
-- fixed-size chunks, so that any node streams it (and any byte range of it) without ever
-- holding it whole in memory.

-- Firmware signing certificates registered by a maker (keyUsage digitalSignature;
-- EC P-256/P-384 or RSA >= 2048). Only the certificate: the key stays with the maker.
CREATE TABLE firmware_signers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE,
    subject      text NOT NULL,
    key_type     text NOT NULL,
    -- SHA-256 of the certificate DER, lower-case hex.
    fingerprint  text NOT NULL UNIQUE CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    cert_der     bytea NOT NULL,
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The manifest of an image. version is dotted numeric ("1.4.2"); version_key holds its
-- parts as integers so that versions compare numerically (ORDER BY version_key).
CREATE TABLE firmware (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id     bigint NOT NULL REFERENCES products (id),
    version        text NOT NULL,
    version_key    integer[] NOT NULL,
    size           bigint NOT NULL CHECK (size > 0),
    sha256         bytea NOT NULL CHECK (length(sha256) = 32),
    signature      bytea NOT NULL,
    signer_id      uuid NOT NULL REFERENCES firmware_signers (id),
    hardware       text[] NOT NULL DEFAULT '{}',   -- compatible hardware; empty: any
    min_version    text,                           -- oldest version it can update from
    release_notes  text NOT NULL DEFAULT '',
    -- 'uploading' until every chunk is stored and the signature verified.
    status         text NOT NULL DEFAULT 'uploading' CHECK (status IN ('uploading', 'ready')),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_id, version)
);
CREATE INDEX firmware_product_version ON firmware (product_id, version_key);

-- The image bytes: chunk seq covers [seq * 262144, (seq + 1) * 262144).
CREATE TABLE firmware_chunks (
    firmware_id  uuid NOT NULL REFERENCES firmware (id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 0),
    data         bytea NOT NULL CHECK (length(data) BETWEEN 1 AND 262144),
    PRIMARY KEY (firmware_id, seq)
);
