-- iothub schema, version 3: indexes so that no request path scans a whole table
-- (tests/integration/test_explain.sh EXPLAINs every statement of db/*.c on devices and
-- certificates against 20,000 devices).

-- GET /v1/certificates without device_id: the newest certificates first.
CREATE INDEX certificates_created ON certificates (created_at);
-- The server certificate `serve` and `init` look for (a handful of rows).
CREATE INDEX certificates_server ON certificates (not_after) WHERE kind = 'server';
-- Certificates that keep a sealed key (server certificates), for re-sealing.
CREATE INDEX certificates_sealed ON certificates (serial) WHERE key_sealed IS NOT NULL;
