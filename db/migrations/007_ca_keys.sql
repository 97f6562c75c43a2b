-- iothub schema, version 7: where CA keys live. The root's key may be absent (an external
-- root: the maker keeps it offline and signs our issuing CA with it), and the issuing CA's
-- key may live in a PKCS#11 token (key_uri, RFC 7512) instead of being sealed here.
ALTER TABLE cas ADD COLUMN key_uri text;
ALTER TABLE cas DROP CONSTRAINT cas_check;
ALTER TABLE cas ADD CONSTRAINT cas_one_key_place CHECK (key_sealed IS NULL OR key_uri IS NULL);
ALTER TABLE cas ADD CONSTRAINT cas_issuing_has_key
    CHECK (role <> 'issuing' OR key_sealed IS NOT NULL OR key_uri IS NOT NULL);
