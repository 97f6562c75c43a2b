-- iothub schema, version 10: what the device-CA API and its CRL fetcher need on top of 005.
-- When the fetcher last tried the CA's crl_url (success or not), so that every node does
-- not fetch at once and a failing URL is retried at the refresh interval, not in a loop.
ALTER TABLE device_cas ADD COLUMN crl_checked_at timestamptz;
-- GET /v1/devices?status=pending pages through the (few) devices awaiting approval.
CREATE INDEX devices_pending ON devices (id) WHERE status = 'pending';
-- The PEM of a device CA as GET /v1/device-cas shows it (64-column base64 lines).
CREATE FUNCTION der_pem(label text, der bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT '-----BEGIN ' || label || E'-----\n'
        || rtrim(regexp_replace(translate(encode(der, 'base64'), E'\n', ''), '(.{64})', E'\\1\n', 'g'), E'\n')
        || E'\n-----END ' || label || E'-----\n' $$;
