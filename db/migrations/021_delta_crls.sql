-- iothub schema, version 21: delta CRLs (RFC 5280 §5.2.4) and CRL pruning. A revocation no
-- longer publishes a CRL; the publisher (server/crl_publisher.c) does, at most once a second
-- per CA: a delta CRL listing what was revoked since the current complete ("base") CRL, and
-- a new base on its own period.
--   base_number: NULL for a complete CRL; for a delta, the cRLNumber of the base it completes.
--   watermark:   complete CRLs built by iothubd: every revocation with revoked_at before it
--                had committed when the CRL was read, so a delta lists revoked_at >= watermark.
ALTER TABLE crls ADD COLUMN base_number bigint;
ALTER TABLE crls ADD COLUMN watermark timestamptz;
ALTER TABLE crls ADD CONSTRAINT crls_delta_after_base
    CHECK (base_number IS NULL OR (base_number < crl_number AND watermark IS NULL));
-- The newest base and the newest delta of a CA (GET /v1/crl, GET /v1/crl?delta=1, the
-- publisher) without walking the deltas.
CREATE INDEX crls_base ON crls (ca_id, crl_number) WHERE base_number IS NULL;
CREATE INDEX crls_delta ON crls (ca_id, crl_number) WHERE base_number IS NOT NULL;
-- A CRL is signed DER with random serials: compressing it gains little and costs seconds at a
-- million entries (50 MB); store it out of line uncompressed.
ALTER TABLE crls ALTER COLUMN der SET STORAGE EXTERNAL;
