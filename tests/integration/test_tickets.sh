#!/usr/bin/env bash
# Session tickets kept in PostgreSQL (net/tickets, server/ticketsync): an mTLS client
# resumes its TLS session after iothubd restarts and on another iothubd of the same database;
# the keys are stored wrapped, under a wrapping key sealed with the master passphrase (and
# re-sealed by rekey); a deleted or tampered key, a revoked device, an expired ticket and a key
# past its age are refused (full handshake); rotation keeps the previous key's tickets working
# and only one node makes each new key.
. "$(dirname "$0")/api_lib.sh"

api_setup tickets || { not_ok "iothubd init, then iothubd serve answers /healthz"; finish; }

bearer "$ADMIN" POST /v1/products '{"name":"ticket sensor"}'
PK=$(jf product_key)
declare -A DEV
# new_device NAME: provisions and activates a device (NAME.pem, NAME.key; DEV[NAME] = id).
new_device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    local id secret
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$1" || return 1
    DEV[$1]=$id
}
new_device one && new_device two
expect "two devices provisioned and activated" $?

# tls OUT WHO PORT ARGS...: an mTLS handshake as WHO with openssl s_client, output to OUT.
tls() {
    local out=$1 who=$2 port=$3
    shift 3
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile trust.pem \
        -cert "$who.pem" -key "$who.key" "$@" </dev/null >"$out" 2>&1
}
reused() { grep -q '^Reused, TLSv1.2' "$1"; }
full() { grep -q '^New, TLSv1.2' "$1"; }
# ticket_key SESS: the key id (first 4 bytes) of the ticket in a saved session, in decimal.
ticket_key() {
    local hex
    hex=$(openssl sess_id -in "$1" -noout -text 2>/dev/null |
        awk '/TLS session ticket:/ {getline; print $3 $4 $5 $6; exit}')
    [ -n "$hex" ] && echo $((16#$hex))
}
restart() { # restart CONF LOG
    stop_server && start_server "$1" "$2"
}

# ---- a restart ---------------------------------------------------------------------------
tls s1.out one "$MQTT_PORT" -sess_out one.sess
K1=$(ticket_key one.sess)
full s1.out && [ -n "$K1" ] &&
    [ "$(count "ticket_keys WHERE id = $K1")" = 1 ]
expect "a full handshake hands out a ticket under a key stored in ticket_keys (id $K1)" $?

[ "$(count ticket_wrap_key)" = 1 ] &&
    [ "$(sql "$URL" "SELECT encode(substr(key_sealed, 1, 4), 'escape') FROM ticket_wrap_key")" = HUBS ] &&
    [ "$(count "ticket_keys WHERE length(key_wrapped) <> 60")" = 0 ]
expect "the wrapping key is a sealed HUBS blob and each ticket key is stored wrapped (60 bytes)" $?

restart iothub.conf serve2.log
expect "iothubd restarts" $?
tls r1.out one "$MQTT_PORT" -sess_in one.sess
reused r1.out
expect "after a restart the device resumes its session (Reused, TLSv1.2)" $?
grep -q "session-ticket keys: 1 loaded" serve2.log
expect "the restarted daemon loaded the stored key" $?

# ---- revocation ----------------------------------------------------------------------------
tls s2.out two "$MQTT_PORT" -sess_out two.sess
tls r2.out two "$MQTT_PORT" -sess_in two.sess
full s2.out && reused r2.out
expect "device two gets a ticket and resumes with it" $?
bearer "$ADMIN" POST "/v1/devices/${DEV[two]}/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ]
expect "device two is revoked" $?
restart iothub.conf serve3.log
# The revocation set loads from the database after the listeners open (server/revfeed).
for _ in $(seq 50); do
    curl -sk "$BASE/metrics" | grep -q '^iothub_revocation_feed_up 1' && break
    sleep 0.1
done
tls r3.out two "$MQTT_PORT" -sess_in two.sess
! reused r3.out && grep -q 'alert certificate revoked' r3.out
expect "after a restart the revoked device's ticket is refused and its full handshake too (alert certificate revoked)" $?
tls r4.out one "$MQTT_PORT" -sess_in one.sess
reused r4.out
expect "device one still resumes" $?

# ---- rekey: the wrapping key is re-sealed, the ticket keys stay --------------------------
stop_server
wrap_before=$(sql "$URL" "SELECT md5(key_sealed) FROM ticket_wrap_key")
keys_before=$(sql "$URL" "SELECT string_agg(md5(key_wrapped), ',' ORDER BY id) FROM ticket_keys")
(umask 077; echo "the next master passphrase for tickets" >new.key)
"$IOTHUBD" -c iothub.conf rekey --new-master-key-file new.key >rekey.out 2>rekey.err
rc=$?
[ $rc = 0 ] && [ "$(sql "$URL" "SELECT md5(key_sealed) FROM ticket_wrap_key")" != "$wrap_before" ] &&
    [ "$(sql "$URL" "SELECT string_agg(md5(key_wrapped), ',' ORDER BY id) FROM ticket_keys")" = "$keys_before" ]
expect "rekey re-seals the wrapping key and leaves the wrapped ticket keys alone" $?
echo "master_key_file = $T/new.key" >>iothub.conf
start_server iothub.conf serve4.log
tls r5.out one "$MQTT_PORT" -sess_in one.sess
reused r5.out
expect "after rekey and a restart with the new passphrase the device still resumes" $?

# ---- a deleted key, a tampered key ----------------------------------------------------------
stop_server
sql "$URL" "DELETE FROM ticket_keys" >/dev/null
start_server iothub.conf serve5.log
tls r6.out one "$MQTT_PORT" -sess_in one.sess -sess_out one.sess
K2=$(ticket_key one.sess)
! reused r6.out && full r6.out && [ "$(count ticket_keys)" = 1 ] && [ "$K2" != "$K1" ]
expect "with its key deleted from the database the ticket is refused: full handshake, new key $K2" $?

stop_server
sql "$URL" "UPDATE ticket_keys SET key_wrapped = decode(repeat('ab', 60), 'hex')" >/dev/null
start_server iothub.conf serve6.log
tls r7.out one "$MQTT_PORT" -sess_in one.sess -sess_out one.sess
K3=$(ticket_key one.sess)
! reused r7.out && full r7.out && grep -q "session-ticket key $K2 does not unwrap: ignored" serve6.log &&
    [ -n "$K3" ] && [ "$K3" != "$K2" ]
expect "a key that does not unwrap under the wrapping key is ignored (logged): full handshake, a fresh key $K3" $?

# ---- ticket lifetime -------------------------------------------------------------------------
stop_server
cp iothub.conf short.conf
echo "tls_ticket_lifetime_s = 3" >>short.conf
start_server short.conf serve7.log
tls l1.out one "$MQTT_PORT" -sess_out life.sess
tls l2.out one "$MQTT_PORT" -sess_in life.sess
sleep 4
tls l3.out one "$MQTT_PORT" -sess_in life.sess
reused l2.out && ! reused l3.out && full l3.out
expect "a ticket resumes within tls_ticket_lifetime_s (3 s) and not after it" $?

# ---- rotation ------------------------------------------------------------------------------
stop_server
cp iothub.conf rot.conf
printf 'tls_ticket_rotation_s = 4\ntls_ticket_lifetime_s = 120\n' >>rot.conf
start_server rot.conf serve8.log
tls o1.out one "$MQTT_PORT" -sess_out old.sess
KO=$(ticket_key old.sess)
KN=$KO
for _ in $(seq 30); do
    sleep 0.5
    tls o2.out one "$MQTT_PORT" -sess_out new.sess
    KN=$(ticket_key new.sess)
    [ -n "$KN" ] && [ "$KN" != "$KO" ] && break
done
[ -n "$KO" ] && [ -n "$KN" ] && [ "$KN" != "$KO" ]
expect "with tls_ticket_rotation_s = 4 new tickets come under a new key ($KO, then $KN)" $?
tls o3.out one "$MQTT_PORT" -sess_in old.sess
reused o3.out
expect "a ticket of the previous key still resumes" $?
# Make the old key older than rotation + lifetime allow: it is deleted at the next refresh.
sql "$URL" "UPDATE ticket_keys SET created_at = created_at - interval '1 hour' WHERE id = $KO" >/dev/null
for _ in $(seq 30); do [ "$(count "ticket_keys WHERE id = $KO")" = 0 ] && break; sleep 0.2; done
sleep 1.5 # the refresh that deleted it also replaced the key set
tls o4.out one "$MQTT_PORT" -sess_in old.sess
tls o5.out one "$MQTT_PORT" -sess_in new.sess
[ "$(count "ticket_keys WHERE id = $KO")" = 0 ] && ! reused o4.out && full o4.out && reused o5.out
expect "a key older than allowed is deleted and its ticket refused; the newer key's ticket resumes" $?

# ---- two nodes on one database ----------------------------------------------------------------
T2=$(sql "$URL" "SELECT now()")
API2=$(free_port)
MQTT2=$(free_port)
sed -e "s/^api_listen = .*/api_listen = 127.0.0.1:$API2/" \
    -e "s/^mqtt_mtls_listen = .*/mqtt_mtls_listen = 127.0.0.1:$MQTT2/" rot.conf >node2.conf
"$IOTHUBD" -c node2.conf serve >node2.log 2>&1 &
NODE2=$!
up=1
for _ in $(seq 150); do
    curl -sk -o /dev/null "https://127.0.0.1:$API2/healthz" && { up=0; break; }
    sleep 0.1
done
[ $up = 0 ]
expect "a second iothubd starts on the same database" $?
tls n1.out one "$MQTT_PORT" -sess_out n1.sess
tls n2.out one "$MQTT2" -sess_in n1.sess
tls n3.out one "$MQTT2" -sess_out n3.sess
tls n4.out one "$MQTT_PORT" -sess_in n3.sess
reused n2.out && reused n4.out
expect "each node resumes the other's tickets" $?
sleep 9 # both nodes rotate (every 4 s, ages in whole seconds) side by side
[ "$(sql "$URL" "SELECT count(*) FROM (SELECT created_at, created_at - lag(created_at) OVER (ORDER BY created_at) AS d FROM ticket_keys) x WHERE created_at > '$T2' AND d < interval '2.5 s'")" = 0 ] &&
    [ "$(count "ticket_keys WHERE created_at > '$T2'")" -ge 2 ]
expect "two rotating nodes never both make a key (the keys they made are seconds apart)" $?
tls n5.out one "$MQTT_PORT" -sess_out n5.sess
tls n6.out one "$MQTT2" -sess_in n5.sess
reused n6.out
expect "after rotations the nodes still resume each other's tickets" $?
kill -TERM "$NODE2"
wait "$NODE2"
rc=$?
[ $rc = 0 ]
expect "the second node stops cleanly" $?

# ---- tickets off ---------------------------------------------------------------------------
stop_server
cp iothub.conf off.conf
echo "tls_ticket_lifetime_s = 0" >>off.conf
start_server off.conf serve9.log
tls f1.out one "$MQTT_PORT" -sess_out off.sess
tls f2.out one "$MQTT_PORT" -sess_in off.sess
full f1.out && [ -z "$(ticket_key off.sess)" ] && ! reused f2.out &&
    ! grep -q "session-ticket keys" serve9.log
expect "tls_ticket_lifetime_s = 0: no ticket is handed out and nothing is loaded" $?

stop_server
expect "iothubd stops cleanly" $?
finish
