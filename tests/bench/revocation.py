#!/usr/bin/env python3
"""Sequential REST revocations over one keep-alive HTTPS connection, as an operator's script
would make them (tests/bench/revocation.sh). Revokes every serial of SERIALS with POST
/v1/certificates/{serial}/revoke, then polls GET /v1/crl?delta=1 (and GET /v1/crl) until the last one is listed.
Prints one JSON object: count, mean/median/p95/max ms per revocation, and the ms from the last
answer to the serial being served in a CRL."""
import http.client
import json
import ssl
import statistics
import sys
import time


def main():
    port, cafile, token, serials_file = sys.argv[1:5]
    also_base = len(sys.argv) > 5 and sys.argv[5] == "base" # a CRL small enough to be rebuilt
    serials = [s.strip() for s in open(serials_file) if s.strip()]
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=60)
    head = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    body = json.dumps({"reason": "keyCompromise"})
    times = []
    for s in serials:
        t = time.perf_counter()
        conn.request("POST", "/v1/certificates/%s/revoke" % s, body=body, headers=head)
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            sys.exit("revocation of %s: HTTP %d" % (s, r.status))
    last = time.perf_counter()
    needle = bytes.fromhex(serials[-1])
    seen = None
    while seen is None and time.perf_counter() - last < 30:
        # the delta; a small CRL is rebuilt whole instead (crl_rebuild_max_entries)
        for path in ("/v1/crl?delta=1", "/v1/crl") if also_base else ("/v1/crl?delta=1",):
            conn.request("GET", path)
            r = conn.getresponse()
            der = r.read()
            if r.status == 200 and needle in der:
                seen = (time.perf_counter() - last) * 1000
                break
        time.sleep(0.01)
    times.sort()
    print(json.dumps({
        "count": len(times),
        "mean_ms": round(statistics.mean(times), 2),
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "max_ms": round(times[-1], 2),
        "to_delta_ms": round(seen, 1) if seen is not None else None,
    }))


if __name__ == "__main__":
    main()
