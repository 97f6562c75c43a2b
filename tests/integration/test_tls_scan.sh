#!/usr/bin/env bash
# TLS configuration scan (GitHub issue 7, part 5): sslscan against the HTTPS API and the
# mutual-TLS MQTT listener (with a device certificate, so that handshakes get past the
# certificate request). By default: TLS 1.2 (+1.3 on the API) only, ECDHE key exchange with
# AEAD ciphers only, no SSLv2/SSLv3/TLS 1.0/1.1, no CBC, RC4, 3DES, NULL or EXPORT suites, no
# compression, no insecure renegotiation. A legacy CBC suite in tls_ciphers is offered on the
# MQTT listener, and only then. The accepted suites are printed as "# ..." lines.
. "$(dirname "$0")/api_lib.sh"

if ! command -v sslscan >/dev/null; then
    not_ok "sslscan is installed (deploy/dev.sh installs it)"
    finish
fi

api_setup tls_scan
expect "iothubd init, then iothubd serve answers /healthz" $?
bearer "$ADMIN" POST /v1/products '{"name":"scan sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-scan\"}"
activate_as device "$(jf device_id)" "$(jf device_secret)" dev
expect "a device certificate for the scans of the mutual-TLS listener" $?

# scan NAME PORT [sslscan options]: NAME.xml
scan() {
    local name=$1 port=$2
    shift 2
    timeout 120 sslscan --no-colour --no-heartbleed --xml="$name.xml" "$@" "127.0.0.1:$port" \
        >"$name.txt" 2>&1 && [ -s "$name.xml" ]
}

# judge NAME MODE: the verdict lines on NAME.xml. MODE: api, mqtt (defaults) or legacy.
judge() {
    python3 - "$1.xml" "$2" <<'EOF'
import sys
import xml.etree.ElementTree as ET

path, mode = sys.argv[1], sys.argv[2]
root = ET.parse(path).getroot()
test = root.find("ssltest")
label = {"api": "HTTPS API", "mqtt": "MQTT mutual-TLS listener",
         "legacy": "MQTT listener with tls_ciphers naming a CBC suite"}[mode]
failed = 0


def check(good, what):
    global failed
    print(("ok - " if good else "not ok - ") + label + ": " + what)
    failed += not good


protos = {(p.get("type"), p.get("version")): p.get("enabled") == "1"
          for p in test.findall("protocol")}
enabled = sorted(v for (t, v), on in protos.items() if on)
ciphers = [(c.get("sslversion"), c.get("cipher"), c.get("curve") or c.get("ecdhebits") or "")
           for c in test.findall("cipher") if c.get("status") in ("accepted", "preferred")]
print("# %s protocols: %s" % (label, ", ".join(
    "%s%s %s" % (t.upper(), v, "on" if on else "off") for (t, v), on in sorted(protos.items()))))
for v, name, curve in ciphers:
    print("# %s accepts %s %s %s" % (label, v, name, curve))
versions = sorted({v for v, _, _ in ciphers})
names = [n for _, n, _ in ciphers]

weak = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
check(not any(protos.get(("ssl", v[3:])) or protos.get(("tls", v[4:])) for v in weak) and
      not any(v in weak for v in versions),
      "no SSLv2, SSLv3, TLS 1.0 or TLS 1.1 (enabled: %s)" % ", ".join(
          "%s%s" % (t.upper(), v) for t, v in sorted(protos) if protos[(t, v)]))
want = {"api": ["TLSv1.2", "TLSv1.3"], "mqtt": ["TLSv1.2"], "legacy": ["TLSv1.2"]}[mode]
check(versions == want, "cipher suites accepted with %s only (%s)" % (
    " and ".join(want), ", ".join(versions) or "none"))
bad = ("RC4", "DES", "NULL", "EXP", "anon", "ADH", "AECDH", "MD5", "PSK", "SRP", "IDEA",
       "SEED", "CAMELLIA", "ARIA")
check(ciphers and not any(b in n for n in names for b in bad),
      "no RC4, 3DES/DES, NULL, EXPORT, anonymous, PSK, Camellia or ARIA suites (%d accepted)"
      % len(ciphers))
tls12 = [n for v, n, _ in ciphers if v == "TLSv1.2"]
# OpenSSL names: ECDHE-..., TLS 1.3 suites (TLS_...) always use ephemeral (EC)DH.
aead = lambda n: "GCM" in n or "CHACHA20" in n or "CCM" in n
if mode == "legacy":
    check("ECDHE-ECDSA-AES128-SHA256" in names,
          "the configured CBC suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 is offered "
          "(ECDHE-ECDSA-AES128-SHA256)")
    check(sorted(names) == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256"],
          "exactly the two configured suites are offered (%s)" % ", ".join(names))
else:
    check(tls12 and all(n.startswith("ECDHE-") for n in tls12),
          "TLS 1.2: only ECDHE key exchange (%s)" % ", ".join(tls12))
    check(all(aead(n) for n in names),
          "only AEAD ciphers (GCM, ChaCha20-Poly1305): no CBC suite")
groups = sorted({g.get("name") for g in test.findall("group")})
check(all(g.startswith(("secp", "x25519", "x448")) for g in groups),
      "key exchange over elliptic curves only, no finite-field DHE group (%s)" % ", ".join(groups))
reneg = test.find("renegotiation")
ok = reneg is None or reneg.get("supported") == "0" or reneg.get("secure") == "1"
check(ok, "no insecure renegotiation (%s)" % (
    "not checked" if reneg is None else
    "not supported" if reneg.get("supported") == "0" else "secure renegotiation"))
sys.exit(1 if failed else 0)
EOF
}

# compression PORT: the compression method the server picks from a TLS 1.2 ClientHello that
# offers DEFLATE (1) before null (0). sslscan cannot test it (Debian's OpenSSL 3 has no zlib).
compression() {
    python3 - "$1" <<'EOF'
import os, socket, struct, sys
def ext(t, body):
    return struct.pack("!HH", t, len(body)) + body
suites = bytes.fromhex("c02bc02fc02cc030cca9cca8")  # ECDHE with AES-GCM / ChaCha20
# supported_groups x25519, P-256, P-384; uncompressed points; ECDSA/RSA-PSS/RSA signatures;
# empty renegotiation_info.
exts = (ext(0x000a, bytes.fromhex("0006001d00170018")) + ext(0x000b, b"\x01\x00") +
        ext(0x000d, bytes.fromhex("00080403050308040401")) + ext(0xff01, b"\x00"))
body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites +
        b"\x02\x01\x00" + struct.pack("!H", len(exts)) + exts)
hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs)
data = b""
while len(data) < 5 or len(data) < 5 + struct.unpack("!H", data[3:5])[0]:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
if data[:1] != b"\x16" or data[5:6] != b"\x02":
    print("no ServerHello: %s" % data[:16].hex())
    sys.exit(1)
sid = data[5 + 4 + 2 + 32]
print(data[5 + 4 + 2 + 32 + 1 + sid + 2])
EOF
}

scan api "$API_PORT"
expect "sslscan of the HTTPS API ran" $?
m=$(compression "$API_PORT")
[ "$m" = 0 ]
expect "HTTPS API: offered DEFLATE and null compression, picks null (method $m)" $?
judge api api || FAILED=$((FAILED + 1))

scan mqtt "$MQTT_PORT" --certs="$T/dev.pem" --pk="$T/dev.key"
expect "sslscan of the mutual-TLS MQTT listener ran (with the device certificate)" $?
judge mqtt mqtt || FAILED=$((FAILED + 1))
m=$(compression "$MQTT_PORT")
[ "$m" = 0 ]
expect "MQTT mutual-TLS listener: offered DEFLATE and null compression, picks null (method $m)" $?
stop_server
expect "iothubd stops" $?

# A legacy CBC suite, named in tls_ciphers, is offered: legacy only when configured.
write_conf legacy.conf "$URL" \
    "tls_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
start_server legacy.conf legacy.log
expect "iothubd serves with tls_ciphers naming a CBC suite" $?
scan legacy "$MQTT_PORT" --certs="$T/dev.pem" --pk="$T/dev.key"
expect "sslscan of the MQTT listener with the legacy suite ran" $?
judge legacy legacy || FAILED=$((FAILED + 1))
stop_server
expect "iothubd stops" $?
finish
