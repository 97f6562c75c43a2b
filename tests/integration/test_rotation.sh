#!/usr/bin/env bash
# Rotating what protects the installation: admin tokens (create a new one, revoke the old,
# the old one stops working at once; the last admin token cannot be revoked) and the master
# passphrase (`iothubd rekey`: all sealed keys re-encrypted in one transaction; a wrong
# current passphrase changes nothing; the daemon starts with the new one only).
. "$(dirname "$0")/api_lib.sh"

api_setup rotation || { not_ok "server starts"; finish; }
ADMIN_ID=$(echo "$ADMIN" | cut -d_ -f2)

# ---- tokens ------------------------------------------------------------------------------
bearer "$ADMIN" POST /v1/tokens '{"name": "admin-2", "role": "admin"}'
expect_status "a second admin token is created" 201
NEW=$(jf token)
NEW_ID=$(jf token_id)
[ "$NEW_ID" = "$(echo "$NEW" | cut -d_ -f2)" ]
expect "the creation answer names the token id" $?

bearer "$ADMIN" GET /v1/tokens
expect_status "tokens are listed" 200
[ "$(jf tokens.1.name)" = admin-2 ] && [ "$(jf tokens.1.token_id)" = "$NEW_ID" ] &&
    ! grep -q "$(echo "$NEW" | cut -d_ -f3-)" body.out
expect "the list names each token without its secret" $?

bearer "$NEW" POST "/v1/tokens/$ADMIN_ID/revoke"
expect_status "the new token revokes the bootstrap token" 200
[ "$(jf name)" = "$(sql "$URL" "SELECT name FROM api_tokens WHERE token_id = '$ADMIN_ID'")" ] &&
    [ "$(jf revoked)" = true ]
expect "the answer names the revoked token" $?
bearer "$ADMIN" GET /v1/products
expect_error "the revoked token is refused at once" 401 unauthorized
bearer "$NEW" POST "/v1/tokens/$ADMIN_ID/revoke"
expect_error "revoking it twice is a conflict" 409 already_revoked
bearer "$NEW" POST "/v1/tokens/$NEW_ID/revoke"
expect_error "the last active admin token cannot be revoked" 409 last_admin_token
bearer "$NEW" POST /v1/tokens/0123456789abcdef/revoke
expect_error "an unknown token id is 404" 404 not_found
bearer "$NEW" POST /v1/tokens/not-a-token/revoke
expect_error "a malformed token id is 404" 404 not_found
bearer "$NEW" POST /v1/tokens '{"name": "ops", "role": "operator"}'
OPS=$(jf token)
bearer "$OPS" GET /v1/tokens
expect_error "an operator may not list tokens" 403 forbidden
bearer "$OPS" POST "/v1/tokens/$NEW_ID/revoke"
expect_error "an operator may not revoke tokens" 403 forbidden
ctl() { "$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token "$NEW" "$@"; }
ctl tokens list >tokens.txt 2>&1 && grep -q "^$NEW_ID  *admin-2  *admin " tokens.txt &&
    grep -q "^$ADMIN_ID .* [0-9-]*T[0-9:]*Z *$" tokens.txt && ! grep -q "$(echo "$NEW" | cut -d_ -f3-)" tokens.txt
expect "iothubctl tokens list shows ids, names, roles and the revocation time" $?
ctl tokens revoke "$(echo "$OPS" | cut -d_ -f2)" >ctl-revoke.out 2>&1
rc=$?
bearer "$OPS" GET /v1/devices
[ $rc = 0 ] && [ "$STATUS" = 401 ]
expect "iothubctl tokens revoke disables the operator token" $?
ctl tokens revoke "$NEW_ID" >ctl-last.out 2>&1
[ $? = 1 ] && grep -q "last_admin_token" ctl-last.out
expect "iothubctl refuses to revoke the last admin token with the server's reason" $?
BOOT_NAME=$(sql "$URL" "SELECT name FROM api_tokens WHERE token_id = '$ADMIN_ID'")
[ "$(count "audit_log WHERE action = 'token.revoke' AND result = 'ok' AND target = '$ADMIN_ID' AND actor = 'token:admin-2' AND details->>'name' = '$BOOT_NAME'")" = 1 ]
expect "the revocation is audited" $?

# ---- master passphrase -------------------------------------------------------------------
stop_server
sealed() { sql "$URL" "SELECT string_agg(md5(key_sealed), ',' ORDER BY 1) FROM (SELECT key_sealed FROM cas WHERE key_sealed IS NOT NULL UNION ALL SELECT key_sealed FROM certificates WHERE key_sealed IS NOT NULL UNION ALL SELECT key_sealed FROM ticket_wrap_key) k"; }
before=$(sealed)
nkeys=$(echo "$before" | tr ',' '\n' | wc -l)

(umask 077; echo "a brand new master passphrase, long enough" >new.key)
IOTHUB_MASTER_KEY="not the passphrase in use here" "$IOTHUBD" -c iothub.conf rekey \
    --new-master-key-file new.key >rekey-bad.out 2>rekey-bad.err
rc=$?
[ "$rc" != 0 ] && [ "$(sealed)" = "$before" ] && grep -q "nothing changed" rekey-bad.err
expect "a wrong current passphrase changes nothing and says so" $?

"$IOTHUBD" -c iothub.conf rekey >rekey-usage.out 2>&1
[ $? = 2 ]
expect "rekey without --new-master-key-file is a usage error" $?

"$IOTHUBD" -c iothub.conf rekey --new-master-key-file new.key >rekey.out 2>rekey.err
rc=$?
after=$(sealed)
[ "$rc" = 0 ] && grep -q "^$nkeys sealed key(s) re-encrypted" rekey.out && [ "$after" != "$before" ]
expect "rekey re-encrypts all $nkeys sealed keys" $?
[ "$(count "audit_log WHERE action = 'master_key.rotate'")" = 1 ]
expect "the rotation is audited" $?

"$IOTHUBD" -c iothub.conf serve >old-pass.log 2>&1 &
pid=$!
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill "$pid"; not_ok "the old passphrase no longer starts the daemon"
else grep -q "master passphrase does not open" old-pass.log
    expect "the old passphrase no longer starts the daemon" $?
fi

echo "master_key_file = $T/new.key" >>iothub.conf
start_server iothub.conf serve2.log # master_key_file wins over IOTHUB_MASTER_KEY
expect "the daemon starts with the new passphrase" $?
bearer "$NEW" POST /v1/products '{"name": "after-rekey"}'
expect_status "the API works after the rotation" 201
PKEY=$(jf product_key)
bearer "$NEW" POST /v1/devices "{\"product_key\": \"$PKEY\", \"serial_number\": \"R-1\"}"
DEV=$(jf device_id)
SECRET=$(jf device_secret)
activate_as device "$DEV" "$SECRET" dev1
expect_status "the re-sealed issuing CA signs a device certificate" 201
fetch_crl now && verify_cert dev1.pem now.pem >/dev/null 2>&1
expect "the certificate verifies against the chain and CRL" $?
stop_server
finish
