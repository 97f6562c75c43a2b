-- iothub schema, version 5: factory device CAs (the maker's own CAs that sign device
-- certificates on the production line, offline). A device whose certificate chains to an
-- enabled device CA connects over mutual TLS with no prior API call and is registered on
-- its first connection (just-in-time registration), or held as 'pending' until approved.

-- Proof of possession: the hub hands out a one-time registration code; the maker signs a
-- "verification certificate" whose subject CN is that code with the CA's key.
CREATE TABLE device_ca_codes (
    code        text PRIMARY KEY CHECK (code ~ '^[0-9a-f]{64}$'),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE TABLE device_cas (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id       bigint NOT NULL REFERENCES products (id),
    subject          text NOT NULL,
    serial           text NOT NULL CHECK (serial ~ '^[0-9A-F]+$'),
    -- SHA-256 of the certificate DER, lower-case hex: a CA is registered once.
    fingerprint      text NOT NULL UNIQUE CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    cert_der         bytea NOT NULL,
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    -- 'auto': a device is registered active on first contact; 'approve': held as pending.
    registration     text NOT NULL DEFAULT 'auto' CHECK (registration IN ('auto', 'approve')),
    -- The CA's own CRL (uploaded, or fetched from crl_url), enforced at the handshake.
    crl_url          text,
    crl_der          bytea,
    crl_number       numeric,
    crl_this_update  timestamptz,
    crl_next_update  timestamptz,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at      timestamptz,
    CHECK ((status = 'disabled') = (disabled_at IS NOT NULL))
);
CREATE INDEX device_cas_product ON device_cas (product_id);

-- Devices registered through a device CA name it; 'pending' waits for an operator's approval.
ALTER TABLE devices ADD COLUMN device_ca_id uuid REFERENCES device_cas (id);
CREATE INDEX devices_device_ca ON devices (device_ca_id) WHERE device_ca_id IS NOT NULL;
ALTER TABLE devices DROP CONSTRAINT devices_status_check;
ALTER TABLE devices ADD CONSTRAINT devices_status_check
    CHECK (status IN ('provisioned', 'pending', 'active', 'revoked'));

-- A certificate signed by a device CA was not issued by one of our CAs: exactly one of
-- ca_id and device_ca_id names the issuer.
ALTER TABLE certificates ALTER COLUMN ca_id DROP NOT NULL;
ALTER TABLE certificates ADD COLUMN device_ca_id uuid REFERENCES device_cas (id);
ALTER TABLE certificates ADD CONSTRAINT certificates_one_issuer
    CHECK ((ca_id IS NULL) <> (device_ca_id IS NULL));
CREATE INDEX certificates_device_ca ON certificates (device_ca_id) WHERE device_ca_id IS NOT NULL;
