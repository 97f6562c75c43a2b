#!/usr/bin/env python3
"""OCSP responses per second against iothubd's /ocsp (docs/BENCHMARKS.md#ocsp-responses).

    ocsp_bench.py URL CA_FILE REQUEST_DER SECONDS CLIENTS MODE

REQUEST_DER is one OCSPRequest without a nonce (`openssl ocsp -issuer ... -cert ...
-no_nonce -reqout`). CLIENTS processes each keep one HTTPS connection alive (HTTP/1.1) and
POST as fast as the answers come for SECONDS. MODE: `nonce` adds a fresh 16-byte nonce to
every request (each answer is signed anew: the worst case), `plain` sends the request as
is (answers for an unchanged status come from the 60 s signed-response cache), `get` sends
it as GET /ocsp/<base64> (same cache). Every answer must be HTTP 200 with
responseStatus successful and, in nonce mode, contain its nonce. Prints one JSON line."""
import base64
import http.client
import json
import multiprocessing
import os
import ssl
import sys
import time
import urllib.parse


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def request_list(req):
    """The requestList TLV of a DER OCSPRequest without extensions."""
    def read(buf, i):
        tag, n = buf[i], buf[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        return tag, i, i + n
    _, s, _ = read(req, 0)      # OCSPRequest
    _, s, _ = read(req, s)      # TBSRequest
    _, ls, le = read(req, s)    # requestList
    return req[s:le]


NONCE_OID = bytes.fromhex("06092b0601050507300102")


def with_nonce(rl, nonce):
    ext = tlv(0x30, NONCE_OID + tlv(0x04, tlv(0x04, nonce)))
    tbs = tlv(0x30, rl + tlv(0xA2, tlv(0x30, ext)))
    return tlv(0x30, tbs)


def worker(args):
    url, cafile, req, seconds, mode = args
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    rl = request_list(req)
    get_path = u.path + "/" + urllib.parse.quote(base64.b64encode(req).decode(), safe="")
    n = bad = 0
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        if mode == "get":
            conn.request("GET", get_path)
        else:
            nonce = os.urandom(16) if mode == "nonce" else None
            body = with_nonce(rl, nonce) if nonce else req
            conn.request("POST", u.path, body=body,
                         headers={"Content-Type": "application/ocsp-request"})
        r = conn.getresponse()
        data = r.read()
        lat.append(time.monotonic() - t0)
        ok = r.status == 200 and b"\x0a\x01\x00" in data[:8]
        if mode == "nonce" and nonce not in data:
            ok = False
        n += 1
        bad += 0 if ok else 1
    conn.close()
    return n, bad, lat


def main():
    url, cafile, reqfile, seconds, clients, mode = sys.argv[1:7]
    req = open(reqfile, "rb").read()
    seconds, clients = float(seconds), int(clients)
    t0 = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        res = pool.map(worker, [(url, cafile, req, seconds, mode)] * clients)
    wall = time.monotonic() - t0
    n = sum(r[0] for r in res)
    bad = sum(r[1] for r in res)
    lat = sorted(x for r in res for x in r[2])
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    print(json.dumps({"mode": mode, "clients": clients, "seconds": seconds, "responses": n,
                      "bad": bad, "per_second": round(n / seconds, 1),
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99), "wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
