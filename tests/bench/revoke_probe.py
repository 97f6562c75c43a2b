#!/usr/bin/env python3
"""Revocation probe for tests/bench/compare.sh: one device holds an MQTT 3.1.1 session over
mutual TLS 1.2; the probe calls POST /v1/devices/{id}/revoke on iothub's REST API and reports
how long after the call the broker closed the session, or that it did not within --watch
seconds (keepalive PINGREQs every second show the session still answers).
  revoke_probe.py --host H --port P --ca CA --cert C --key K --api URL --token-file F
                  --device-id ID [--watch S] [--after CMD]
  revoke_probe.py --connect-only ...   (exit 0 when a new session is accepted, 1 if refused)
--after CMD runs (sh -c) right after the API call answered (e.g. reload a CRL file).
Prints one JSON line."""
import argparse
import http.client
import json
import select
import socket
import ssl
import subprocess
import sys
import time


def mqtt_connect(a, cid=b"revoke-probe"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(a.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(a.cert, a.key)
    raw = socket.create_connection((a.host, a.port), timeout=10)
    s = ctx.wrap_socket(raw)
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"  # MQTT 3.1.1, clean session, keepalive 60
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = b""
    while len(ack) < 4:
        chunk = s.recv(4 - len(ack))
        if not chunk:
            raise ConnectionError("closed before CONNACK")
        ack += chunk
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError("CONNACK refused: %r" % ack)
    return s


def revoke(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.check_hostname = False
    u = a.api.split("://", 1)[1].rstrip("/")
    host, port = u.rsplit(":", 1)
    token = open(a.token_file).read().strip()
    c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    c.request("POST", "/v1/devices/%s/revoke" % a.device_id,
              body=json.dumps({"reason": "keyCompromise"}),
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status


def main():
    p = argparse.ArgumentParser()
    for k in ("host", "ca", "cert", "key", "api", "token-file", "device-id", "after"):
        p.add_argument("--" + k)
    p.add_argument("--port", type=int)
    p.add_argument("--watch", type=float, default=5.0)
    p.add_argument("--connect-only", action="store_true")
    a = p.parse_args()
    if a.connect_only:
        try:
            s = mqtt_connect(a, b"revoke-probe-new")  # no takeover of the watched session
            s.sendall(b"\xc0\x00")  # PINGREQ: a refused certificate may only show now (TLS 1.2)
            s.settimeout(3)
            ok = s.recv(2) == b"\xd0\x00"
        except (OSError, ConnectionError) as e:
            print(json.dumps({"accepted": False, "why": str(e)[:200]}))
            return 1
        print(json.dumps({"accepted": ok}))
        return 0 if ok else 1
    s = mqtt_connect(a)
    s.setblocking(False)
    t0 = time.monotonic()
    status = revoke(a)
    api_ms = (time.monotonic() - t0) * 1e3
    if a.after:
        subprocess.run(["sh", "-c", a.after], check=False)
    pings = pongs = 0
    next_ping = time.monotonic() + 1
    closed_ms = None
    buf = b""
    while time.monotonic() - t0 < a.watch:
        r, _, _ = select.select([s], [], [], 0.01)
        if r:
            try:
                d = s.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                d = b""
            if not d:
                closed_ms = (time.monotonic() - t0) * 1e3
                break
            buf += d
            while buf.startswith(b"\xd0\x00"):
                pongs += 1
                buf = buf[2:]
        if time.monotonic() >= next_ping:
            try:
                s.sendall(b"\xc0\x00")
                pings += 1
            except (OSError, ssl.SSLError):
                pass
            next_ping += 1
    out = {"api_status": status, "api_ms": round(api_ms, 1), "closed": closed_ms is not None,
           "closed_ms": round(closed_ms, 1) if closed_ms is not None else None,
           "watched_s": a.watch, "pings": pings, "pongs": pongs}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
