-- REST API support: RFC 3339 rendering, lookups the API makes on every call.

-- Only reasons a CRL may carry: 7 is unused in RFC 5280, removeFromCRL (8) is for delta CRLs.
ALTER TABLE certificates DROP CONSTRAINT certificates_revocation_reason_check;
ALTER TABLE certificates ADD CONSTRAINT certificates_revocation_reason_check
    CHECK (revocation_reason IN (0, 1, 2, 3, 4, 5, 6, 9, 10));

-- Times in API answers: RFC 3339, UTC, whole seconds.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX devices_product ON devices (product_id);

-- PEM armour (RFC 7468: base64 in 64-column lines).
CREATE FUNCTION pem(label text, der bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT '-----BEGIN ' || label || E'-----\n'
              || regexp_replace(translate(encode(der, 'base64'), E'\n', ''), '(.{64})', E'\\1\n', 'g')
              || CASE WHEN length(translate(encode(der, 'base64'), E'\n', '')) % 64 = 0
                      THEN '' ELSE E'\n' END
              || '-----END ' || label || E'-----\n' $$;

-- RFC 5280 reason names, as the API shows them.
CREATE FUNCTION crl_reason_name(code smallint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE code WHEN 0 THEN 'unspecified' WHEN 1 THEN 'keyCompromise'
              WHEN 2 THEN 'cACompromise' WHEN 3 THEN 'affiliationChanged'
              WHEN 4 THEN 'superseded' WHEN 5 THEN 'cessationOfOperation'
              WHEN 6 THEN 'certificateHold' WHEN 9 THEN 'privilegeWithdrawn'
              WHEN 10 THEN 'aACompromise' END $$;

-- A certificate as the API shows it.
CREATE FUNCTION certificate_json(c certificates, with_pem boolean) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_strip_nulls(jsonb_build_object(
              'serial', c.serial, 'kind', c.kind, 'device_id', c.device_id,
              'service_id', c.service_id, 'subject', c.subject, 'status', c.status,
              'not_before', rfc3339(c.not_before), 'not_after', rfc3339(c.not_after),
              'revoked_at', rfc3339(c.revoked_at),
              'revocation_reason', crl_reason_name(c.revocation_reason),
              'certificate', CASE WHEN with_pem THEN pem('CERTIFICATE', c.der) END)) $$;
