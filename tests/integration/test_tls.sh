#!/usr/bin/env bash
# net/tls_* (the transport) checked with OpenSSL clients through tests/tools/tls_echo: mutual TLS 1.2 only,
# chain, validity, clientAuth and revocation checks (also on ticket resumption and on live
# connections), handshake timeout, handshake cap, the no-client-cert and plain modes.
# test-lane: alone (its tls_echo checks run under 3-5 s timeouts; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/lib.sh"
cd "$T"
TLS_ECHO=$BUILD/tests/tools/tls_echo
if [ ! -x "$TLS_ECHO" ]; then
    not_ok "tls_echo is built ($TLS_ECHO)"
    finish
fi

# ---- certificates: root -> issuing -> server / clients; another root; an expired client --
ec_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
cat >ext.cnf <<'EOF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[server_only]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF
# issue NAME CN ISSUER EXT SERIAL: NAME.key + NAME.pem signed by ISSUER.{pem,key}.
issue() {
    ec_key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null &&
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "$5" -days 30 \
            -extfile ext.cnf -extensions "$4" -out "$1.pem" 2>/dev/null
}
gen_certs() {
    ec_key root.key && openssl req -new -x509 -key root.key -subj "/CN=Test Root" -days 60 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem 2>/dev/null || return 1
    issue issuing "Test Issuing CA" root issuing 0x1001 &&
        issue server localhost issuing server 0x2001 &&
        issue dev1 device-one issuing client 0x4A0000000000000000000000000000D1 &&
        issue dev2 device-two issuing client 0x4A0000000000000000000000000000D2 &&
        issue rev1 device-revoked issuing client 0x4A0000000000000000000000000000E1 &&
        issue noeku device-noeku issuing server_only 0x4A0000000000000000000000000000E2 || return 1
    ec_key other_root.key && openssl req -new -x509 -key other_root.key -subj "/CN=Other Root" \
        -days 60 -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out other_root.pem 2>/dev/null &&
        issue other device-one other_root client 0x4A0000000000000000000000000000D1 || return 1
    # Expired: `openssl x509` cannot backdate in OpenSSL 3.0; `openssl ca -startdate/-enddate` can.
    mkdir -p newcerts && : >index.txt && echo 4A00E3 >serial.txt
    cat >ca.cnf <<'EOF'
[ca]
default_ca = dflt
[dflt]
database = index.txt
new_certs_dir = newcerts
serial = serial.txt
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
    ec_key expired.key && openssl req -new -key expired.key -subj "/CN=device-expired" \
        -out expired.csr 2>/dev/null &&
        openssl ca -batch -config ca.cnf -cert issuing.pem -keyfile issuing.key -in expired.csr \
            -startdate 20200101000000Z -enddate 20200201000000Z -extensions client -notext \
            -out expired.pem 2>/dev/null || return 1
    cat server.pem issuing.pem >server_chain.pem
    cat issuing.pem root.pem >client_cas.pem
}
check "test certificates are made with openssl" gen_certs

# ---- the server ------------------------------------------------------------------------
echo 4A0000000000000000000000000000E1 >revoked.txt
ECHO_PID=
# start_echo LOG ARGS...: starts tls_echo on a free port, sets PORT and ECHO_PID; its log
# (stderr) is LOG.err, named in echo_log.
start_echo() {
    local log=$1; shift
    echo_log=$log.err
    "$TLS_ECHO" "$@" >"$log" 2>"$log.err" &
    ECHO_PID=$!
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening //p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$ECHO_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_echo() {
    [ -n "$ECHO_PID" ] || return 0
    kill -TERM "$ECHO_PID" 2>/dev/null
    wait "$ECHO_PID"
    local rc=$?
    ECHO_PID=
    return $rc
}
trap 'stop_echo >/dev/null 2>&1' EXIT

# client OUT ARGS...: an s_client session that sends "hello" and waits for the echo.
# MARK: how many lines tls_echo had logged when the session started.
client() {
    local out=$1; shift
    MARK=$(wc -l <"$echo_log")
    (echo hello; sleep 0.6) | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
        -servername localhost -CAfile root.pem "$@" >"$out" 2>&1
}
echoed() { grep -q "^$1: hello" "$2"; }
# refused OUT ALERT LOGGED: the session of OUT got no echo, s_client saw the TLS alert ALERT
# ("alert certificate revoked"; "" for a close without one), tls_echo logged LOGGED during
# it and is still running.
refused() {
    ! grep -q ': hello$' "$1" && { [ -z "$2" ] || grep -q "$2" "$1"; } &&
        tail -n +$((MARK + 1)) "$echo_log" | grep -q "$3" && kill -0 "$ECHO_PID" 2>/dev/null
}

start_echo echo.log -t 1000 -m 4 server_chain.pem server.key client_cas.pem 0 revoked.txt
expect "tls_echo starts" $?

client c1.out -cert dev1.pem -key dev1.key -sess_out dev1.sess
echoed device-one c1.out && grep -q 'cn=device-one serial=4A0000000000000000000000000000D1' echo.log
expect "a valid client certificate gets through; its CN and serial are seen" $?
grep -q 'Protocol *: TLSv1.2' c1.out && grep -Eq 'Cipher *: ECDHE-ECDSA-(AES128-GCM|AES256-GCM|CHACHA20)' c1.out
expect "TLS 1.2 with an ECDHE-ECDSA AEAD suite is negotiated" $?

client c2.out
! echoed anonymous c2.out && ! echoed device-one c2.out &&
    refused c2.out "" 'No client certification received'
expect "no client certificate: refused (logged; tls_echo still up)" $?

client c3.out -cert other.pem -key other.key
! echoed device-one c3.out && refused c3.out 'alert unknown ca' 'not correctly signed by the trusted CA'
expect "a certificate from another CA (same CN and serial): refused (alert unknown ca, logged)" $?

client c4.out -cert expired.pem -key expired.key
! echoed device-expired c4.out && grep -q 'expired' echo.log.err &&
    refused c4.out 'alert certificate expired' 'validity has expired'
expect "an expired certificate: refused (alert certificate expired, logged)" $?

client c5.out -cert noeku.pem -key noeku.key
! echoed device-noeku c5.out &&
    refused c5.out 'alert unsupported certificate' 'does not match the extendedKeyUsage'
expect "a certificate without clientAuth (serverAuth only): refused (alert unsupported certificate)" $?

client c6.out -cert rev1.pem -key rev1.key
! echoed device-revoked c6.out && grep -q 'revoked' echo.log.err &&
    refused c6.out 'alert certificate revoked' 'certificate has been revoked'
expect "a revoked serial is refused at the handshake (alert certificate revoked, logged)" $?

client c7.out -cert dev1.pem -key dev1.key -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
! echoed device-one c7.out && refused c7.out 'alert protocol version' 'not within min/max'
expect "TLS 1.1: refused (alert protocol version)" $?

client c8.out -cert dev1.pem -key dev1.key -tls1_3
! echoed device-one c8.out && refused c8.out 'alert handshake failure' 'no ciphersuites in common'
expect "TLS 1.3 is not offered (alert handshake failure)" $?

client c9.out -cert dev1.pem -key dev1.key -cipher ECDHE-ECDSA-AES128-SHA256 -tls1_2
! echoed device-one c9.out && refused c9.out 'alert handshake failure' 'no ciphersuites in common'
expect "a CBC suite is not accepted by default (alert handshake failure)" $?

# ---- session tickets ---------------------------------------------------------------------
client r1.out -cert dev1.pem -key dev1.key -sess_in dev1.sess
grep -q '^Reused, TLSv1.2' r1.out && echoed device-one r1.out &&
    grep -q 'cn=device-one serial=4A0000000000000000000000000000D1 resumed=1' echo.log
expect "session resumption with a ticket works and keeps the identity" $?

client r2.out -cert dev2.pem -key dev2.key -sess_out dev2.sess
echoed device-two r2.out
expect "device-two connects (ticket saved)" $?
echo 4A0000000000000000000000000000D2 >>revoked.txt
kill -HUP "$ECHO_PID"
for _ in $(seq 50); do grep -q '^reloaded 2 ' echo.log && break; sleep 0.1; done
client r3.out -cert dev2.pem -key dev2.key -sess_in dev2.sess
! echoed device-two r3.out && refused r3.out 'alert certificate revoked' 'certificate has been revoked'
expect "a serial revoked after the first session is refused on resumption (alert certificate revoked)" $?
client r4.out -cert dev1.pem -key dev1.key -sess_in dev1.sess
echoed device-one r4.out
expect "other devices still resume" $?

# A live connection whose certificate gets revoked is closed (after SIGHUP: recheck).
(echo hello; sleep 3) | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -CAfile root.pem \
    -cert dev1.pem -key dev1.key >live.out 2>&1 &
LIVE=$!
for _ in $(seq 50); do echoed device-one live.out && break; sleep 0.1; done
echo 4A0000000000000000000000000000D1 >>revoked.txt
kill -HUP "$ECHO_PID"
for _ in $(seq 50); do grep -q 'reason=revoked' echo.log && break; sleep 0.1; done
grep -q '^reloaded 3 revoked serial(s), closed 1 connection' echo.log && grep -q 'reason=revoked' echo.log
expect "revoking a connected device closes its live connection" $?
wait $LIVE

# ---- handshake timeout and cap -------------------------------------------------------------
cat >idle.py <<'EOF'
import select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
t0, closed = time.monotonic(), {}
while len(closed) < n and time.monotonic() - t0 < 5:
    ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.05)
    for s in ready:
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        if data == b"":
            closed[s] = round(time.monotonic() - t0, 2)
print(" ".join(str(closed.get(s, -1)) for s in socks))
EOF
# 6 silent clients with a cap of 4 handshakes: 2 are closed at once, 4 after the 1 s timeout.
python3 idle.py "$PORT" 6 >idle.out 2>&1
python3 - "$(cat idle.out)" <<'EOF'
import sys
t = sorted(float(x) for x in sys.argv[1].split())
fast, slow = t[:2], t[2:]
sys.exit(0 if len(t) == 6 and all(0 <= x < 0.5 for x in fast) and all(0.8 <= x < 3 for x in slow) else 1)
EOF
rc=$?
expect "silent clients are dropped after the handshake timeout, excess handshakes at once ($(cat idle.out))" $rc

client c10.out -cert dev2.pem -key dev2.key
! echoed device-two c10.out && refused c10.out 'alert certificate revoked' 'certificate has been revoked'
expect "the revoked device-two is still refused with a full handshake (alert certificate revoked)" $?

stop_echo
expect "tls_echo exits cleanly on SIGTERM" $?

# ---- no client certificate mode, plain mode --------------------------------------------------
start_echo none.log -n server_chain.pem server.key client_cas.pem 0
client n1.out
echoed anonymous n1.out && grep -q 'Protocol *: TLSv1.2' n1.out
expect "TLS without client certificates (username/password listener) works" $?
# 4 MiB both ways at once through Python's ssl: many records, coalesced writes, backpressure.
# One thread interleaves writes and reads (an SSL object must not be shared by threads).
cat >bulk.py <<'EOF'
import os, select, socket, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context(cafile="root.pem")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.setblocking(False)
data = os.urandom(4 << 20)
prefix = b"anonymous: "
sent, got, idle = 0, bytearray(), 0
while len(got) - got.count(prefix) * len(prefix) < len(data) and idle < 300:
    want_w = [s] if sent < len(data) else []
    r, w, _ = select.select([s], want_w, [], 0.1)
    idle = 0 if (r or w) else idle + 1
    if w:
        try:
            sent += s.send(data[sent:sent + 16384])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
    while True:
        try:
            chunk = s.recv(1 << 16)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not chunk:
            idle = 300
            break
        got += chunk
out = bytes(got).replace(prefix, b"")
print("ok" if out == data else "mismatch: sent %d, got %d" % (sent, len(out)))
EOF
timeout 60 python3 bulk.py "$PORT" >bulk.out 2>&1
grep -qx ok bulk.out
expect "4 MiB echoed intact in both directions at once" $?
(echo hello; sleep 3) | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -CAfile root.pem \
    >held.out 2>&1 &
HELD=$!
for _ in $(seq 50); do echoed anonymous held.out && break; sleep 0.1; done
stop_echo
expect "tls_echo stops cleanly with a connection open" $?
wait $HELD

start_echo plain.log -p server_chain.pem server.key client_cas.pem 0
(echo hello; sleep 0.3) | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read(6)); s.settimeout(3)
print(s.recv(100).decode())' "$PORT" >p1.out 2>&1
echoed anonymous p1.out
expect "plain TCP mode echoes through the same callbacks" $?
stop_echo
expect "tls_echo (plain) exits cleanly" $?

finish
