-- iothub schema, version 11: certificates of factory devices in API answers.
-- A certificate signed by a registered device CA (just-in-time registration) names that CA:
-- certificate_json (002) gains device_ca_id; ca_id stays absent for such certificates.
CREATE OR REPLACE FUNCTION certificate_json(c certificates, with_pem boolean) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_strip_nulls(jsonb_build_object(
              'serial', c.serial, 'kind', c.kind, 'device_id', c.device_id,
              'service_id', c.service_id, 'subject', c.subject, 'status', c.status,
              'device_ca_id', c.device_ca_id,
              'not_before', rfc3339(c.not_before), 'not_after', rfc3339(c.not_after),
              'revoked_at', rfc3339(c.revoked_at),
              'revocation_reason', crl_reason_name(c.revocation_reason),
              'certificate', CASE WHEN with_pem THEN pem('CERTIFICATE', c.der) END)) $$;
