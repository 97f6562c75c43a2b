#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Run from anywhere: python3 tests/fuzz/seeds.py. The CSR seeds are made with the openssl CLI
(fresh keys each run); everything else is deterministic. Regression inputs found by fuzzing
are checked in next to these as regress_* files and are not touched by this script."""
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEV_A = "0b8e3b8a-1111-4c1e-8a6e-00000000000a"
DEV_B = "0b8e3b8a-2222-4c1e-8a6e-00000000000b"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- MQTT packets (client to server) --------------------------------------------------------
def varint(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect(cid="c1", clean=True, keepalive=60, will=None, user=None, pw=None, level=4):
    flags = (2 if clean else 0)
    payload = s(cid)
    if will:
        topic, msg, qos, retain = will
        flags |= 4 | (qos << 3) | (32 if retain else 0)
        payload += s(topic) + s(msg)
    if user is not None:
        flags |= 128
        payload += s(user)
    if pw is not None:
        flags |= 64
        payload += s(pw)
    name = "MQTT" if level == 4 else "MQIsdp"
    return pkt(0x10, s(name) + bytes([level, flags]) + struct.pack(">H", keepalive) + payload)


def publish(topic, payload=b"", qos=0, pid=1, retain=False, dup=False):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return pkt(0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0), body)


def subscribe(pid, filters):
    return pkt(0x82, struct.pack(">H", pid) + b"".join(s(f) + bytes([q]) for f, q in filters))


def unsubscribe(pid, filters):
    return pkt(0xA2, struct.pack(">H", pid) + b"".join(s(f) for f in filters))


def ack(kind, pid):
    first = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62, "pubcomp": 0x70}[kind]
    return pkt(first, struct.pack(">H", pid))


PINGREQ = pkt(0xC0, b"")
DISCONNECT = pkt(0xE0, b"")


# ---- fuzz_mqtt_session operations -------------------------------------------------------------
def op_open(slot, ident):
    return bytes([0 << 2 | slot, ident])


def op_data(slot, data):
    return bytes([1 << 2 | slot]) + struct.pack(">H", len(data)) + data


def op_closed(slot, revoked=0):
    return bytes([2 << 2 | slot, revoked])


def op_tick(secs):
    return bytes([3 << 2, secs])


def op_kick(slot):
    return bytes([4 << 2 | slot])


def op_kick_serial(slot):
    return bytes([5 << 2 | slot])


def op_command(to_b=False, qos=1, retain=False, payload=b"on"):
    base = (len(payload) << 4) | (8 if to_b else 0) | (4 if retain else 0)
    f = next(base + d for d in range(3) if (base + d) % 3 == qos)  # the fuzzer's QoS is f % 3
    return bytes([6 << 2, f]) + payload


def op_stats():
    return bytes([7 << 2])


def op_break(slot):
    return bytes([8 << 2 | slot])


def op_close_all():
    return bytes([9 << 2])


def op_cluster(cmd, slot, a, rest=b""):
    """Commands 56..61 of fuzz_mqtt_session (release, inject, restore, claim_done,
    release_session, hook answers)."""
    return bytes([cmd << 2 | slot, a]) + rest


# identities: 0 device A (mTLS), 1 device A (password), 2 device B, 3 service
def mqtt_session_seeds():
    cmds = "devices/%s/commands/#" % DEV_A
    tele_a = "devices/%s/telemetry" % DEV_A
    write("mqtt_session", "device_commands_qos1",
          op_open(0, 0) + op_data(0, connect("dev-a")) + op_data(0, subscribe(1, [(cmds, 1)]))
          + op_command(qos=1) + op_data(0, ack("puback", 1)) + op_data(0, publish(tele_a, b"21.5"))
          + op_data(0, unsubscribe(2, [cmds, "devices/%s/none" % DEV_A])) + op_command(qos=0)
          + op_data(0, PINGREQ) + op_data(0, DISCONNECT) + op_tick(1) + op_stats())
    write("mqtt_session", "service_telemetry_qos2",
          op_open(1, 3) + op_data(1, connect("backend-1"))
          + op_data(1, subscribe(7, [("devices/+/telemetry", 2), ("devices/+/secret/#", 1)]))
          + op_open(0, 0) + op_data(0, connect("dev-a"))
          + op_data(0, publish(tele_a, b"{\"t\":1}", qos=1, pid=10))
          + op_data(0, publish(tele_a, b"{\"t\":2}", qos=2, pid=11))
          + op_data(0, publish(tele_a, b"{\"t\":2}", qos=2, pid=11, dup=True))
          + op_data(0, ack("pubrel", 11))
          + op_data(1, ack("puback", 1) + ack("pubrec", 2) + ack("pubcomp", 2))
          + op_data(1, unsubscribe(8, ["devices/+/telemetry"])) + op_stats())
    write("mqtt_session", "takeover",
          op_open(0, 0) + op_data(0, connect("a1", clean=False))
          + op_data(0, subscribe(1, [(cmds, 2)]))
          + op_open(1, 1) + op_data(1, connect("a2", clean=False, user=DEV_A, pw="secret"))
          + op_command(qos=2) + op_data(0, PINGREQ) + op_tick(0)
          + op_data(1, ack("pubrec", 1)) + op_data(1, ack("pubcomp", 1))
          + op_kick(1) + op_tick(0) + op_stats())
    write("mqtt_session", "persistent_offline_queue",
          op_open(0, 0) + op_data(0, connect("a1", clean=False))
          + op_data(0, subscribe(1, [(cmds, 1)])) + op_command(qos=1, payload=b"x")
          + op_closed(0) + op_command(qos=1, payload=b"y") + op_command(qos=2, payload=b"z")
          + op_open(2, 0) + op_data(2, connect("a1", clean=False))
          + op_data(2, ack("puback", 1) + ack("puback", 2) + ack("pubrec", 3))
          + op_closed(2) + op_open(3, 0) + op_data(3, connect("a1", clean=True)) + op_stats())
    write("mqtt_session", "will_keepalive",
          op_open(1, 3) + op_data(1, connect("svc", keepalive=0))
          + op_data(1, subscribe(2, [("devices/+/status/#", 1)]))
          + op_open(0, 2)
          + op_data(0, connect("dev-b", keepalive=2,
                               will=("devices/%s/status/online" % DEV_B, b"0", 1, True)))
          + op_tick(2) + op_tick(2) + op_tick(0)
          + op_open(2, 3) + op_data(2, connect("svc2"))
          + op_data(2, subscribe(3, [("devices/+/status/#", 2)])) + op_stats())
    write("mqtt_session", "retained_and_revoked",
          op_open(0, 0) + op_data(0, connect("dev-a"))
          + op_data(0, publish("devices/%s/telemetry" % DEV_A, b"last", qos=1, pid=3, retain=True))
          + op_data(0, publish("devices/%s/telemetry/x" % DEV_A, b"kept", retain=True))
          + op_open(1, 3) + op_data(1, connect("svc"))
          + op_data(1, subscribe(4, [("devices/+/telemetry", 1), ("devices/#", 0)]))
          + op_kick_serial(0) + op_tick(0) + op_closed(1, 1)
          + op_data(0, publish("devices/%s/telemetry" % DEV_A, b"", retain=True)) + op_stats())
    write("mqtt_session", "acl_denied",
          op_open(0, 0) + op_data(0, connect("dev-a"))
          + op_data(0, subscribe(1, [("devices/%s/#" % DEV_B, 1), ("#", 0), ("devices/+/x", 0)]))
          + op_data(0, publish("devices/%s/commands/x" % DEV_B, b"spoof", qos=1, pid=2))
          + op_open(1, 3) + op_data(1, connect("svc"))
          + op_data(1, subscribe(2, [("devices/%s/telemetry" % DEV_B, 1)]))
          + op_data(1, publish("devices/%s/commands/reboot" % DEV_A, b"1", qos=1, pid=5))
          + op_data(1, publish("devices/%s/commands/reboot" % DEV_B, b"1", qos=1, pid=6)))
    write("mqtt_session", "connect_refused_and_malformed",
          op_open(0, 0) + op_data(0, connect("x", level=5))
          + op_open(1, 2) + op_data(1, connect("", clean=False))
          + op_open(2, 0) + op_data(2, publish("devices/x", b"before connect"))
          + op_open(3, 2) + op_data(3, connect("dev-b") + b"\xf0\x00")
          + op_tick(0) + op_open(0, 1) + op_data(0, connect("mqtt31", level=3)[:7])
          + op_data(0, connect("mqtt31", level=3)[7:]) + op_data(0, connect("again", level=3)))
    write("mqtt_session", "connect_timeout_split",
          op_open(0, 0) + bytes([10 << 2, 3]) + connect("slow")[:3] + op_tick(11)
          + op_open(1, 2) + bytes([11 << 2 | 1, 5]) + connect("b")[:5] + op_tick(0)
          + bytes([11 << 2 | 1, 200]) + connect("b")[5:])
    # hooks: holds released out of order, injected duplicates, a restored session resumed,
    # a parked CONNECT claimed, a session released to another node, expiry.
    write("mqtt_session", "hooks_cluster",
          op_cluster(61, 0, 3)  # accepted holds, claim parks
          + op_cluster(58, 0, 0x02 << 1 & 0x06)  # restore session svc
          + op_cluster(58, 1, 0x05)  # its subscription devices/+/telemetry
          + op_cluster(58, 2, 0x94, b"abc")  # a delivery, state 1, pid 0 -> queued
          + op_cluster(58, 2, 0xb4, b"abc")  # in flight, pid 1
          + op_cluster(58, 3, 0x0d)  # QoS 2 id 1
          + op_cluster(58, 3, 0x40, b"rt")  # retained
          + op_open(1, 3) + op_data(1, connect("svc", clean=False))
          + op_open(0, 0) + op_data(0, connect("dev-a", clean=False))
          + op_data(0, subscribe(1, [(cmds, 1)]))  # buffered while parked
          + op_cluster(59, 0, 0x01)  # claim done, ok (key d:A)
          + op_data(0, publish(tele_a, b"1", qos=1, pid=1) + publish(tele_a, b"2", qos=2, pid=2))
          + op_cluster(56, 0, 1) + op_cluster(56, 0, 0)
          + op_cluster(57, 1, 0x28, b"i") + op_cluster(57, 1, 0x28, b"i")  # injected twice
          + op_cluster(57, 2, 0x2d, b"r")
          + op_cluster(61, 0, 0) + op_cluster(60, 0, 0x04)  # release session svc
          + op_tick(0) + op_closed(0) + op_tick(40) + op_stats())
    write("mqtt_session", "write_failure_shutdown",
          op_open(0, 0) + op_data(0, connect("a", clean=False))
          + op_data(0, subscribe(1, [(cmds, 1)])) + op_break(0) + op_command(qos=1)
          + op_open(1, 3) + op_data(1, connect("svc", will=("devices/x/commands/y", b"w", 1, False)))
          + op_data(1, subscribe(2, [("devices/+/telemetry", 1)]))
          + op_open(2, 2) + op_data(2, publish("devices/%s/telemetry" % DEV_B, b"t", qos=1, pid=1))
          + op_close_all() + op_tick(0) + op_stats())


# ---- fuzz_mqtt_codec --------------------------------------------------------------------------
def mqtt_codec_seeds():
    write("mqtt_codec", "connect_will_credentials",
          connect("client-1", will=("devices/x/status", b"gone", 2, True), user="u", pw="p")
          + subscribe(3, [("devices/x/#", 2), ("$SYS/+", 0)]) + publish("devices/x/status", b"1", 2, 9))


# ---- fuzz_config ----------------------------------------------------------------------------
def config_seeds():
    write("config", "dev", """# Development configuration written by deploy/dev.sh; edit freely.
db_url = postgresql:///iothub?host=/tmp/sock&user=postgres
api_listen = 127.0.0.1:8443
mqtt_mtls_listen = 127.0.0.1:8883
hostname = localhost,127.0.0.1
master_key_file = /work/.dev/master.key
""")
    write("config", "all_keys", """db_url = "postgresql://iothub@db.example:5432/iothub"
api_listen = [::1]:8443
mqtt_mtls_listen = 0.0.0.0:8883
mqtt_tls_listen = [::]:8884
mqtt_plain_listen = off
hostname = gw.example.com, 10.0.0.7 , ::1, *.example.org
master_key_file =
ca_key_type = rsa-3072
device_cert_days = 36500
crl_validity_hours = 8784
tls_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384
workers = 256
log_level = debug
log_format = json
""")
    write("config", "errors", "workers = 257\n")
    write("config", "duplicate_key", "log_level = info\n\n  # comment\nlog_level=warn\n")
    write("config", "bad_listen", "api_listen = [::1:8443\nhostname = a..b\n")
    write("config", "no_equals", "db_url\n")


# ---- fuzz_json ------------------------------------------------------------------------------
def json_seeds():
    routes = {"devices": 0, "commands": 1, "services": 2, "reason": 3, "activate": 4, "tokens": 5}
    write("json", "device_create", bytes([routes["devices"]])
          + b'{"product_key": "0123456789abcdef", "serial_number": "SN-0001:A/b"}')
    write("json", "device_claim", bytes([0x80 | routes["devices"]]) + b'{"serial_number": "X1"}')
    write("json", "device_bad_serial", bytes([0]) + b'{"product_key":"k","serial_number":"a b"}')
    write("json", "command_object", bytes([routes["commands"]])
          + b'{"name": "set-temp.v2", "payload": {"target": 21.5, "unit": "C"}}')
    write("json", "command_string", bytes([routes["commands"]])
          + b'{"name": "reboot", "payload": "now\\u00e9"}')
    write("json", "service", bytes([routes["services"]])
          + b'{"name": "backend", "publish": ["devices/+/commands/#", "!devices/x/#"],'
            b' "subscribe": ["devices/+/telemetry", "$SYS/#"]}')
    write("json", "service_bad_pattern", bytes([routes["services"]])
          + b'{"name": "b", "publish": ["a/#/b"], "subscribe": ["x+"]}')
    write("json", "reason", bytes([routes["reason"]]) + b'{"reason": "keyCompromise"}')
    write("json", "reason_hold", bytes([routes["reason"]]) + b'{"reason": "certificateHold"}')
    write("json", "token", bytes([routes["tokens"]]) + b'{"name": "ci-bot", "role": "operator"}')
    write("json", "duplicate_keys", bytes([routes["tokens"]]) + b'{"name": "a", "name": "b"}')
    write("json", "not_object", bytes([routes["devices"]]) + b'["serial_number"]')
    write("json", "malformed", bytes([routes["commands"]]) + b'{"name": "x", "payload": \xff}')
    write("json", "bearer_token", bytes([6]) + b"iothub_0123456789abcdef_"
          + b"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE")


# ---- fuzz_csr (and the activation body) -----------------------------------------------------------
def csr_seeds():
    with tempfile.TemporaryDirectory() as t:
        def run(*args):
            subprocess.run(args, check=True, cwd=t, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

        def req(key, out, fmt="PEM"):
            run("openssl", "req", "-new", "-key", key, "-subj", "/CN=%s" % DEV_A,
                "-outform", fmt, "-out", out)
            with open(os.path.join(t, out), "rb") as f:
                return f.read()

        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "p256.key")
        run("openssl", "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384.key")
        run("openssl", "ecparam", "-name", "secp521r1", "-genkey", "-noout", "-out", "p521.key")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "rsa2048.key")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
            "-out", "rsa1024.key")
        run("openssl", "genpkey", "-algorithm", "ED25519", "-out", "ed25519.key")
        p256 = req("p256.key", "p256.csr")
        write("csr", "p256.pem", p256)
        write("csr", "p384.der", req("p384.key", "p384.der", "DER"))
        write("csr", "rsa2048.pem", req("rsa2048.key", "rsa2048.csr"))
        write("csr", "rsa1024_refused.der", req("rsa1024.key", "rsa1024.der", "DER"))
        write("csr", "p521_refused.der", req("p521.key", "p521.der", "DER"))
        write("csr", "ed25519_refused.der", req("ed25519.key", "ed25519.der", "DER"))
        der = bytearray(req("p256.key", "p256b.der", "DER"))
        der[-5] ^= 0x01  # inside the signature: proof of possession fails
        write("csr", "p256_bad_signature.der", bytes(der))
        write("csr", "p256_new_label.pem", p256.replace(b"CERTIFICATE REQUEST",
                                                        b"NEW CERTIFICATE REQUEST"))
        write("csr", "garbage.pem", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA*\n"
                                    b"-----END CERTIFICATE REQUEST-----\n")


# ---- fuzz_der -------------------------------------------------------------------------------
def der_seeds():
    def t(unix, wide=False):
        if wide:  # sel odd: v - 2**38
            v = unix + (1 << 38)
            return bytes([1]) + v.to_bytes(5, "big")
        v = unix - 1700000000 + 100 * 366 * 86400
        return bytes([0]) + v.to_bytes(5, "big")

    def strb(x):
        x = x.encode()
        return bytes([len(x)]) + x

    def cert(kind, subj, iss, with_o, with_url, cn, o, nb, na, alts=(), url=""):
        sel = kind | (subj << 2) | (iss << 4) | (with_o << 6) | (with_url << 7)
        out = bytes([0, sel]) + strb(cn) + strb(o) + nb + na + bytes([len(alts)])
        for a in alts:
            out += strb(a)
        return out + strb(url)

    def crl(ca, number, tu, nu, entries):
        out = bytes([1, ca]) + number.to_bytes(8, "big") + tu + nu + bytes([len(entries)])
        for serial, when, reason in entries:
            out += bytes([len(serial)]) + serial + when + bytes([reason])
        return out

    now, year = 1750000000, 365 * 86400
    client = cert(3, 0, 0, 1, 1, DEV_A, "0123456789abcdef", t(now), t(now + year),
                  url="https://localhost:8443/v1/crl")
    server = cert(2, 1, 2, 0, 0, "iothub server", "", t(now), t(now + year),
                  ["localhost", "127.0.0.1", "::1", "gw.example.com"])
    issuing = cert(1, 2, 0, 1, 0, "iothub issuing CA", "iothub", t(now), t(now + 10 * year))
    root = cert(0, 1, 0, 1, 0, "iothub root CA", "iothub", t(-1000000000, True),
                t(253402300799, True))
    write("der", "client_cert", client)
    write("der", "server_cert_san", server)
    write("der", "issuing_then_bundle", issuing + bytes([2, 3, 0, 3, 2]))
    write("der", "root_1938_to_9999", root)
    write("der", "bad_validity", cert(3, 0, 0, 0, 0, "x", "", t(now + year), t(now)))
    write("der", "crl_reasons", crl(0, 7, t(now), t(now + 86400), [
        (bytes.fromhex("4F00AA00112233445566778899AABBCC"), t(now - 60), 1),
        (bytes.fromhex("00000080"), t(now - 120), 0),
        (bytes.fromhex("00"), t(now - 1), 4),
        (bytes.fromhex("FF" * 20), t(now - 2), 10)]))
    write("der", "crl_empty_rsa", crl(2, 2 ** 64 - 1, t(now), t(now + 3600), []))
    write("der", "crl_bad_reason", crl(1, 1, t(now), t(now + 60), [(b"\x01", t(now), 7)]))
    write("der", "cert_crl_bundle", client + crl(0, 1, t(now), t(now + 60), [(b"\x42", t(now), 9)])
          + bytes([2, 4, 0, 1, 2, 3]))


# ---- fuzz_proxyproto ------------------------------------------------------------------------
def proxyproto_seeds():
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    a4 = bytes([203, 0, 113, 7, 127, 0, 0, 1]) + struct.pack("!HH", 40000, 8883)
    a6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HH", 1, 2)
    tlv = b"\x03\x00\x04abcd" + b"\x05\x00\x02id"
    write("proxyproto", "v2_tcp4", sig + b"\x21\x11" + struct.pack("!H", 12) + a4 + b"\x16\x03\x01")
    write("proxyproto", "v2_tcp6_tlv", sig + b"\x21\x21" + struct.pack("!H", 36 + len(tlv)) + a6 + tlv)
    write("proxyproto", "v2_local", sig + b"\x20\x00\x00\x00")
    write("proxyproto", "v2_unix", sig + b"\x21\x31" + struct.pack("!H", 216) + bytes(216))
    write("proxyproto", "v2_truncated", sig + b"\x21\x11\x00\x0c" + a4[:5])
    write("proxyproto", "v1_tcp4", b"PROXY TCP4 192.0.2.1 192.0.2.2 5000 8883\r\n\x16\x03")
    write("proxyproto", "v1_tcp6", b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 1\r\n")
    write("proxyproto", "v1_unknown", b"PROXY UNKNOWN\r\n")
    write("proxyproto", "trusted_list", b"10.0.0.5, 10.89.0.0/16, fd00::/8")
    write("proxyproto", "tls_hello", bytes.fromhex("16030100a5010000a10303"))


if __name__ == "__main__":
    mqtt_session_seeds()
    mqtt_codec_seeds()
    config_seeds()
    json_seeds()
    csr_seeds()
    der_seeds()
    proxyproto_seeds()
