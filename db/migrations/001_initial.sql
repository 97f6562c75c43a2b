-- iothub schema, version 1: the certificate authority, the fleet, admin access and audit.
-- Serial numbers are upper-case hex; times are timestamptz (UTC).

-- Certificate authorities: our root and issuing ("online") CA, later registered external
-- CAs (bring your own CA: no key). Private keys are sealed (AES-256-GCM, see ca/seal.h).
CREATE TABLE cas (
    id           serial PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('root', 'issuing', 'external')),
    active       boolean NOT NULL DEFAULT true,
    subject      text NOT NULL,
    key_type     text NOT NULL,
    cert_der     bytea NOT NULL,
    key_sealed   bytea,
    serial       text NOT NULL UNIQUE CHECK (serial ~ '^[0-9A-F]+$'),
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL,
    crl_number   bigint NOT NULL DEFAULT 0 CHECK (crl_number >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (role = 'external' OR key_sealed IS NOT NULL)
);
CREATE UNIQUE INDEX cas_one_active ON cas (role) WHERE active AND role <> 'external';

CREATE TABLE products (
    id            bigserial PRIMARY KEY,
    product_key   text NOT NULL UNIQUE,
    name          text NOT NULL,
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id     bigint NOT NULL REFERENCES products (id),
    serial_number  text NOT NULL,
    secret_hash    text NOT NULL,
    status         text NOT NULL DEFAULT 'provisioned'
                   CHECK (status IN ('provisioned', 'active', 'revoked')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    last_seen      timestamptz,
    UNIQUE (product_id, serial_number)
);

-- Backend applications: topic patterns they may publish / subscribe to ('!' denies).
CREATE TABLE services (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE,
    publish      text[] NOT NULL DEFAULT '{}',
    subscribe    text[] NOT NULL DEFAULT '{}',
    secret_hash  text NOT NULL,
    status       text NOT NULL DEFAULT 'provisioned'
                 CHECK (status IN ('provisioned', 'active', 'revoked')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Every certificate the issuing CA signed. Server certificates keep their sealed key.
CREATE TABLE certificates (
    serial             text PRIMARY KEY CHECK (serial ~ '^[0-9A-F]+$'),
    ca_id              integer NOT NULL REFERENCES cas (id),
    kind               text NOT NULL CHECK (kind IN ('device', 'service', 'server')),
    device_id          uuid REFERENCES devices (id),
    service_id         uuid REFERENCES services (id),
    subject            text NOT NULL,
    der                bytea NOT NULL,
    key_sealed         bytea,
    not_before         timestamptz NOT NULL,
    not_after          timestamptz NOT NULL,
    status             text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
    revoked_at         timestamptz,
    revocation_reason  smallint CHECK (revocation_reason BETWEEN 0 AND 10),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK (kind <> 'device' OR device_id IS NOT NULL),
    CHECK (kind <> 'service' OR service_id IS NOT NULL),
    CHECK (kind <> 'server' OR key_sealed IS NOT NULL)
);
CREATE INDEX certificates_device ON certificates (device_id) WHERE device_id IS NOT NULL;
CREATE INDEX certificates_service ON certificates (service_id) WHERE service_id IS NOT NULL;
CREATE INDEX certificates_revoked ON certificates (ca_id, revoked_at) WHERE status = 'revoked';
-- A device holds at most one valid certificate.
CREATE UNIQUE INDEX certificates_one_valid_per_device
    ON certificates (device_id) WHERE status = 'valid' AND device_id IS NOT NULL;

-- Published CRLs; cRLNumber comes from cas.crl_number, incremented under a row lock.
CREATE TABLE crls (
    ca_id        integer NOT NULL REFERENCES cas (id),
    crl_number   bigint NOT NULL,
    this_update  timestamptz NOT NULL,
    next_update  timestamptz NOT NULL,
    entries      integer NOT NULL,
    der          bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ca_id, crl_number),
    CHECK (next_update > this_update)
);

-- Admin bearer tokens "iothub_<token_id>_<secret>": the secret has 256 bits of entropy
-- and is stored as its SHA-256 only.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    token_id      text NOT NULL UNIQUE,
    name          text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'provisioner', 'auditor')),
    secret_hash   bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    role     text,
    action   text NOT NULL,
    target   text,
    source   text,
    result   text NOT NULL,
    details  jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
