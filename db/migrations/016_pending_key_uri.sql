-- iothub schema, version 16: an external root's pending issuing CA key may live in a PKCS#11
-- token (ca_key_store = pkcs11:...) instead of being sealed here. key_uri is its RFC 7512
-- URI without PIN; `iothubd ca import` moves it to cas.key_uri. Exactly one place holds
-- the key, and only the issuing key goes to a token (the server key stays sealed).
ALTER TABLE pending_keys ADD COLUMN key_uri text;
ALTER TABLE pending_keys ALTER COLUMN key_sealed DROP NOT NULL;
ALTER TABLE pending_keys ADD CONSTRAINT pending_keys_one_key_place
    CHECK ((key_sealed IS NULL) <> (key_uri IS NULL));
ALTER TABLE pending_keys ADD CONSTRAINT pending_keys_token_issuing_only
    CHECK (key_uri IS NULL OR role = 'issuing');
