#!/usr/bin/env bash
# Signed firmware (issue 16, docs/firmware.md): signer certificates registered and refused,
# images uploaded with a detached signature made by `openssl dgst -sha256 -sign` (streamed,
# verified at upload, nothing stored on any refusal), then downloaded by a device with its
# client certificate: whole, by ranges (curl -C -), with ETag / If-None-Match / If-Range,
# refused to another product's device, bounded in concurrency.
. "$(dirname "$0")/api_lib.sh"

URL=$(new_db firmware) || exit 1
write_conf iothub.conf "$URL" "firmware_max_size = 8000000" "firmware_max_downloads = 2"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
start_server iothub.conf serve.log
expect "serve starts (firmware_max_size = 8000000, firmware_max_downloads = 2)" $?

# ---- signer certificates -----------------------------------------------------------------
# signer NAME KEYOPTS EXT...: NAME.key and a self-signed NAME.pem with the extensions given.
signer() {
    local name=$1 keyopt=$2
    shift 2
    local ext=()
    for e in "$@"; do ext+=(-addext "$e"); done
    openssl req -x509 -new $keyopt -nodes -keyout "$name.key" -subj "/CN=$name firmware signer" \
        -days 30 "${ext[@]}" -out "$name.pem" 2>/dev/null
}
signer_body() {
    "$PY" -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "certificate": open(sys.argv[2]).read()}))' "$1" "$2" >"$1.json"
}
NOEXT="basicConstraints=critical,CA:FALSE"
signer ec "-newkey ec -pkeyopt ec_paramgen_curve:P-256" "$NOEXT" "keyUsage=critical,digitalSignature"
signer rsa "-newkey rsa:2048" "$NOEXT" "keyUsage=critical,digitalSignature" "extendedKeyUsage=codeSigning"
signer other "-newkey ec -pkeyopt ec_paramgen_curve:P-384" "$NOEXT" "keyUsage=digitalSignature"
signer noku "-newkey ec -pkeyopt ec_paramgen_curve:P-256" "$NOEXT" "keyUsage=keyEncipherment"
signer rsa1024 "-newkey rsa:1024" "$NOEXT" "keyUsage=digitalSignature"
signer p521 "-newkey ec -pkeyopt ec_paramgen_curve:P-521" "$NOEXT" "keyUsage=digitalSignature"
signer tls "-newkey ec -pkeyopt ec_paramgen_curve:P-256" "$NOEXT" "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth"
for s in ec rsa other noku rsa1024 p521 tls; do signer_body $s $s.pem; done

bearer "$ADMIN" POST /v1/firmware-signers @ec.json
expect_status "an EC P-256 signer (keyUsage digitalSignature) is registered: 201" 201
EC_ID=$(jf id)
[ "$(jf fingerprint)" = "$(openssl x509 -in ec.pem -outform DER | sha256sum | cut -c1-64)" ] &&
    [ "$(jf key_type)" = ec-p256 ]
expect "its fingerprint is the SHA-256 of the certificate DER, key_type ec-p256" $?
bearer "$ADMIN" POST /v1/firmware-signers @rsa.json
expect_status "an RSA-2048 signer with extendedKeyUsage codeSigning is registered: 201" 201
RSA_ID=$(jf id) RSA_FP=$(jf fingerprint)
bearer "$ADMIN" POST /v1/firmware-signers @other.json
expect_status "an EC P-384 signer is registered: 201" 201
bearer "$ADMIN" POST /v1/firmware-signers @ec.json
expect_error "the same signer twice: 409" 409 conflict
bearer "$ADMIN" POST /v1/firmware-signers @noku.json
expect_error "a signer without digitalSignature is refused: 422" 422 signer_refused
bearer "$ADMIN" POST /v1/firmware-signers @rsa1024.json
expect_error "an RSA-1024 signer is refused: 422" 422 signer_refused
bearer "$ADMIN" POST /v1/firmware-signers @p521.json
expect_error "a P-521 signer is refused: 422" 422 signer_refused
bearer "$ADMIN" POST /v1/firmware-signers @tls.json
expect_error "a signer whose extendedKeyUsage is serverAuth only is refused: 422" 422 signer_refused
cat ec.pem rsa.pem >two.pem && signer_body two two.pem
bearer "$ADMIN" POST /v1/firmware-signers @two.json
expect_error "two certificates in one PEM are refused: 400" 400 invalid_certificate
bearer "$ADMIN" GET /v1/firmware-signers
[ "$STATUS" = 200 ] && [ "$(jf signers | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3 ]
expect "GET /v1/firmware-signers lists the three signers" $?
bearer "$ADMIN" GET "/v1/firmware-signers/$EC_ID"
[ "$STATUS" = 200 ] && jf_file certificate shown.pem &&
    [ "$(openssl x509 -in shown.pem -outform DER | sha256sum)" = "$(openssl x509 -in ec.pem -outform DER | sha256sum)" ]
expect "GET /v1/firmware-signers/{id} returns the certificate" $?

echo "$(date +%T.%N | cut -c1-12) products, devices" >&2
# ---- products, devices -------------------------------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name": "fw"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/products '{"name": "fw-other"}'
PK2=$(jf product_key)
new_device() { # VAR PRODUCT SERIAL: provisions and activates; VAR.pem/.key, VAR_SECRET
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$2\", \"serial_number\": \"$3\"}"
    printf -v "$1" '%s' "$(jf device_id)"
    printf -v "$1_SECRET" '%s' "$(jf device_secret)"
    activate_as device "$(jf device_id)" "$(jf device_secret)" "$1"
}
new_device DEV "$PK" sn-1 && new_device DEV2 "$PK" sn-2 && new_device DEV3 "$PK" sn-3 &&
    new_device ALIEN "$PK2" sn-x
expect "three devices of the product and one of another product activated" $?

echo "$(date +%T.%N | cut -c1-12) uploads" >&2
# ---- uploads -----------------------------------------------------------------------------
head -c 1000000 /dev/urandom >fw1.bin
head -c 600000 /dev/urandom >fw2.bin
openssl dgst -sha256 -sign ec.key -out fw1.sig fw1.bin
openssl dgst -sha256 -sign rsa.key -out fw2.sig fw2.bin
openssl dgst -sha256 -sign other.key -out fw2.other.sig fw2.bin
# upload FILE SIG QUERY: POST /v1/firmware?QUERY with the image as the body.
upload() {
    call POST "/v1/firmware?$3" -H "Authorization: Bearer $ADMIN" \
        -H 'Content-Type: application/octet-stream' \
        -H "X-Firmware-Signature: $(base64 -w0 "$2")" --data-binary "@$1"
}
stored() { echo "$(count firmware)/$(count firmware_chunks)"; }

upload fw1.bin fw1.sig "product_key=$PK&version=1.0.0&signer=$EC_ID&hardware=rev-a,rev-b&release_notes=first%20release"
expect_status "an image signed with the EC signer is uploaded: 201" 201
FW1=$(jf id)
[ "$(jf sha256)" = "$(sha256sum <fw1.bin | cut -c1-64)" ] && [ "$(jf size)" = 1000000 ] &&
    [ "$(jf hardware)" = '["rev-a", "rev-b"]' ] && [ "$(jf release_notes)" = "first release" ] &&
    [ "$(jf signer_name)" = ec ] && [ "$(jf status)" = ready ]
expect "the manifest: sha256 as sha256sum prints it, size, hardware, notes, signer" $?
[ "$(stored)" = 1/4 ]
rc=$?
expect "the image is stored in 4 chunks of 256 KiB ($(stored))" $rc

# One byte flipped (writing a fixed byte would leave a random image unchanged 1 time in 256).
python3 -c "b = bytearray(open('fw2.bin', 'rb').read()); b[1000] ^= 0xff; open('tampered.bin', 'wb').write(b)"
upload tampered.bin fw2.sig "product_key=$PK&version=1.1.0&signer=$RSA_FP"
expect_error "a tampered image is refused: 422 signature_invalid" 422 signature_invalid
[ "$(stored)" = 1/4 ]
rc=$?
expect "nothing of the tampered image is stored ($(stored))" $rc
upload fw2.bin fw2.other.sig "product_key=$PK&version=1.1.0&signer=$RSA_ID"
expect_error "an image signed by another signer than named is refused: 422" 422 signature_invalid
upload fw2.bin fw2.sig "product_key=$PK&version=1.1.0&signer=0000000000000000000000000000000000000000000000000000000000000000"
expect_error "an unknown signer: 422 signer_unknown" 422 signer_unknown
upload fw2.bin fw2.sig "product_key=$PK&version=1.0.0&signer=$RSA_ID"
expect_error "the same version again: 422 version_not_newer" 422 version_not_newer
upload fw2.bin fw2.sig "product_key=$PK&version=0.9.9&signer=$RSA_ID"
expect_error "a downgrade: 422 version_not_newer" 422 version_not_newer
upload fw2.bin fw2.sig "product_key=$PK&version=1.1.0&signer=$RSA_ID&size=5"
expect_error "a size that is not the body's: 400 size_mismatch" 400 size_mismatch
upload fw2.bin fw2.sig "product_key=$PK&version=01.1&signer=$RSA_ID"
expect_error "a malformed version: 400" 400 invalid_parameter
head -c 8000001 /dev/zero >big.bin
upload big.bin fw2.sig "product_key=$PK&version=9.0&signer=$RSA_ID"
expect_error "an image over firmware_max_size: 413" 413 payload_too_large
curl -sS --cacert trust.pem -o body.out -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/octet-stream' -H "X-Firmware-Signature: $(base64 -w0 fw2.sig)" \
    -H 'Transfer-Encoding: chunked' --data-binary @big.bin \
    "$BASE/v1/firmware?product_key=$PK&version=9.0&signer=$RSA_ID" >status.out 2>/dev/null
[ "$(cat status.out)" = 413 ]
expect "an oversized image sent chunked (no Content-Length) is refused mid-stream: 413" $?
[ "$(stored)" = 1/4 ] && server_alive
rc=$?
expect "nothing of the refused uploads is stored ($(stored)), the server is alive" $rc
upload fw2.bin fw2.sig "product_key=$PK&version=1.1.0&signer=$RSA_ID&min_version=1.0.0"
expect_status "an image signed with the RSA signer is uploaded: 201" 201
FW2=$(jf id)
[ "$(jf sha256)" = "$(sha256sum <fw2.bin | cut -c1-64)" ] && [ "$(jf min_version)" = 1.0.0 ] &&
    [ "$(jf signer)" = "$RSA_FP" ]
expect "its manifest: sha256, min_version, the signer's fingerprint" $?
[ "$(count "audit_log WHERE action = 'firmware.upload' AND result = 'ok'")" = 2 ] &&
    [ "$(count "audit_log WHERE action = 'firmware.upload' AND result LIKE '422%'")" -ge 5 ]
expect "uploads are audited, refused ones too" $?
bearer "$ADMIN" GET "/v1/firmware?product_key=$PK"
[ "$STATUS" = 200 ] && [ "$(jf firmware.0.version)" = 1.1.0 ] && [ "$(jf firmware.1.version)" = 1.0.0 ]
expect "GET /v1/firmware?product_key= lists the images, newest first" $?

echo "$(date +%T.%N | cut -c1-12) downloads" >&2
# ---- downloads ---------------------------------------------------------------------------
dl() { # WHO FW [curl options]: GET the image as device WHO with its certificate
    local who=$1 fw=$2
    shift 2
    local id=${!who}
    call GET "/v1/devices/$id/firmware/$fw" --cert "$who.pem" --key "$who.key" "$@"
}
dl DEV "$FW1"
[ "$STATUS" = 200 ] && cmp -s body.out fw1.bin && [ "$(header ETag)" = "\"$(sha256sum <fw1.bin | cut -c1-64)\"" ]
expect "a device downloads the image with its certificate: same bytes (cmp), ETag the sha256" $?
ETAG=$(header ETag)
head -c 300000 fw1.bin >part.bin
curl -sS --cacert trust.pem --cert DEV.pem --key DEV.key -C - -o part.bin \
    "$BASE/v1/devices/$DEV/firmware/$FW1" 2>curl.err && cmp -s part.bin fw1.bin
expect "curl -C - resumes a partial download (Range: bytes=300000-) to the same bytes" $?
dl DEV "$FW1" -H 'Range: bytes=262140-262150'
[ "$STATUS" = 206 ] && [ "$(header Content-Range)" = "bytes 262140-262150/1000000" ] &&
    cmp -s body.out <(tail -c +262141 fw1.bin | head -c 11)
expect "Range across a chunk boundary: 206, Content-Range, the right 11 bytes" $?
dl DEV "$FW1" -H 'Range: bytes=-100'
[ "$STATUS" = 206 ] && cmp -s body.out <(tail -c 100 fw1.bin)
expect "a suffix range (bytes=-100): the last 100 bytes" $?
dl DEV "$FW1" -H 'Range: bytes=1000000-'
[ "$STATUS" = 416 ] && [ "$(header Content-Range)" = "bytes */1000000" ]
expect "an unsatisfiable range: 416 with Content-Range bytes */size" $?
dl DEV "$FW1" -H "If-None-Match: $ETAG"
[ "$STATUS" = 304 ] && [ ! -s body.out ]
expect "If-None-Match with the ETag: 304, no body" $?
dl DEV "$FW1" -H 'Range: bytes=10-19' -H 'If-Range: "0000"'
[ "$STATUS" = 200 ] && cmp -s body.out fw1.bin
expect "If-Range with another ETag: the whole image (200)" $?
dl DEV "$FW1" -H 'Range: bytes=10-19' -H "If-Range: $ETAG"
[ "$STATUS" = 206 ]
expect "If-Range with the ETag: the range (206)" $?
call GET "/v1/devices/$DEV2/firmware/$FW2" -u "$DEV2:$DEV2_SECRET"
[ "$STATUS" = 200 ] && cmp -s body.out fw2.bin
expect "Basic device credentials download too" $?
dl ALIEN "$FW1"
expect_error "another product's device: 403" 403 forbidden
call GET "/v1/devices/$DEV/firmware/$FW1" --cert ALIEN.pem --key ALIEN.key
expect_error "a device's certificate on another device's path: 403" 403 forbidden
call GET "/v1/devices/$DEV/firmware/$FW1"
expect_error "no credentials: 401" 401 client_certificate_required
dl DEV 00000000-0000-0000-0000-000000000000
expect_status "an unknown image: 404" 404
call GET "/v1/devices/$DEV/firmware-signers" --cert DEV.pem --key DEV.key
[ "$STATUS" = 200 ] && [ "$(grep -c 'BEGIN CERTIFICATE' body.out)" = 3 ] && cp body.out bundle.pem &&
    openssl dgst -sha256 -verify <(openssl x509 -in rsa.pem -pubkey -noout) -signature fw2.sig fw2.bin >/dev/null &&
    openssl storeutl -noout -certs bundle.pem >/dev/null 2>&1
expect "GET /v1/devices/{id}/firmware-signers: a PEM bundle of the 3 active signers" $?

echo "$(date +%T.%N | cut -c1-12) concurrency:" >&2
# concurrency: firmware_max_downloads = 2, one per device. A device that reads 100 bytes and
# stalls (a 4 KiB receive buffer, so the image cannot hide in socket buffers) holds its slot.
slow() {
    "$PY" - "$API_PORT" "/v1/devices/${!1}/firmware/$FW4" "$1.pem" "$1.key" trust.pem <<'PY' &
import socket, ssl, sys, time
port, path, cert, key, ca = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(port)))
t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
t.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
t.recv(100)
print("slow client: got %d bytes" % len(t.recv(100)), file=sys.stderr)
time.sleep(60)
PY
}
# 6 MB: more than the kernel buffers of a stalled loopback connection (tcp_wmem max 4 MiB).
head -c 6000000 /dev/urandom >fw4.bin
openssl dgst -sha256 -sign ec.key -out fw4.sig fw4.bin
upload fw4.bin fw4.sig "product_key=$PK&version=1.1.1&signer=$EC_ID"
expect_status "a 6 MB image uploaded" 201
FW4=$(jf id)
slow DEV; P1=$!
sleep 1
dl DEV "$FW1"
[ "$STATUS" = 429 ] && [ -n "$(header Retry-After)" ]
expect "a second download by the same device is refused at once (got $STATUS)" $?
expect_error "a second download by the same device: 429 with Retry-After" 429 download_in_progress
slow DEV2; P2=$!
sleep 1
dl DEV3 "$FW1"
[ "$STATUS" = 503 ] && [ -n "$(header Retry-After)" ]
expect "a third download is refused at once (got $STATUS)" $?
expect_error "a third concurrent download (firmware_max_downloads = 2): 503 with Retry-After" 503 busy
call GET /metrics
grep -q '^iothub_firmware_downloads_active 2$' body.out &&
    grep -q '^iothub_firmware_downloads_refused_total{reason="busy"} 1$' body.out &&
    grep -q '^iothub_firmware_downloads_refused_total{reason="device_busy"} 1$' body.out &&
    grep -q '^iothub_firmware_uploads_total{result="signature_invalid"} 2$' body.out &&
    grep -q '^iothub_firmware_uploads_total{result="ok"} 3$' body.out
rc=$?
[ $rc = 0 ] || grep '^iothub_firmware' body.out >&2
expect "metrics: 2 downloads active, refusals by reason, uploads by result" $rc
kill "$P1" "$P2" 2>/dev/null
wait "$P1" "$P2" 2>/dev/null
sleep 0.5
dl DEV3 "$FW1"
[ "$STATUS" = 200 ] && cmp -s body.out fw1.bin
expect "once the slow downloads are gone the slots are free again" $?

echo "$(date +%T.%N | cut -c1-12) signer disabled" >&2
# ---- iothubctl ---------------------------------------------------------------------------
CTL=("$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token-file admin.token)
echo "$ADMIN" >admin.token
head -c 700000 /dev/urandom >fw3.bin
openssl dgst -sha256 -sign rsa.key -out fw3.sig fw3.bin
"${CTL[@]}" firmware-signers list >ctl.out 2>ctl.err && grep -q "$RSA_FP" ctl.out &&
    "${CTL[@]}" --json firmware-signers show "$RSA_ID" >ctl.json 2>>ctl.err &&
    "$PY" -c 'import json,sys; d=json.load(open("ctl.json")); sys.exit(0 if "BEGIN CERTIFICATE" in d["certificate"] else 1)'
expect "iothubctl firmware-signers list / show --json" $?
"${CTL[@]}" --json firmware upload fw3.bin --product "$PK" --firmware-version 1.2.0 \
    --signature fw3.sig --signer "$RSA_FP" --hardware rev-c --notes "via the CLI" >ctl.json 2>ctl.err
rc=$?
FW3=$("$PY" -c 'import json; print(json.load(open("ctl.json"))["id"])' 2>/dev/null)
[ $rc = 0 ] && [ -n "$FW3" ] &&
    [ "$("$PY" -c 'import json; print(json.load(open("ctl.json"))["sha256"])')" = "$(sha256sum <fw3.bin | cut -c1-64)" ]
rc=$?
[ $rc = 0 ] || cat ctl.err >&2
expect "iothubctl firmware upload streams the image: stored with the sha256 of sha256sum" $rc
"${CTL[@]}" firmware upload fw2.bin --product "$PK" --firmware-version 1.3.0 --signature fw3.sig \
    --signer "$RSA_FP" >ctl.out 2>ctl.err
[ $? = 1 ] && grep -q 'signature_invalid' ctl.err
expect "iothubctl firmware upload of a wrongly signed image: exit 1, signature_invalid" $?
"${CTL[@]}" firmware list --product "$PK" >ctl.out 2>ctl.err && [ "$(grep -c "$PK" ctl.out)" = 4 ] &&
    "${CTL[@]}" firmware show "$FW3" >ctl.out 2>ctl.err && grep -q '^release notes: *via the CLI' ctl.out
expect "iothubctl firmware list / show" $?
"${CTL[@]}" firmware delete "$FW3" >ctl.out 2>ctl.err && grep -q "deleted: $FW3" ctl.out &&
    ! "${CTL[@]}" firmware show "$FW3" >/dev/null 2>&1
expect "iothubctl firmware delete" $?

# ---- signer disabled, deletion -----------------------------------------------------------
bearer "$ADMIN" PATCH "/v1/firmware-signers/$EC_ID" '{"status": "disabled"}'
[ "$STATUS" = 200 ] && [ "$(jf status)" = disabled ]
expect "PATCH a signer to disabled" $?
openssl dgst -sha256 -sign ec.key -out fw3.sig fw2.bin
upload fw2.bin fw3.sig "product_key=$PK&version=2.0&signer=$EC_ID"
expect_error "a disabled signer signs nothing: 422 signer_unknown" 422 signer_unknown
bearer "$ADMIN" DELETE "/v1/firmware/$FW2"
[ "$STATUS" = 204 ] && [ "$(count "firmware_chunks WHERE firmware_id = '$FW2'")" = 0 ] &&
    [ "$(count "firmware WHERE id = '$FW2'")" = 0 ]
expect "DELETE /v1/firmware/{id}: 204, its chunks gone" $?
[ "$(count "audit_log WHERE action IN ('firmware_signer.create', 'firmware_signer.update', 'firmware.delete') AND result = 'ok'")" = 6 ]
expect "signer registrations, the update and the deletion are audited" $?
server_alive
expect "the server is alive" $?
stop_server
expect "serve stops cleanly" $?
finish
