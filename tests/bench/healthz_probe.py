#!/usr/bin/env python3
"""GET /healthz over one kept-alive HTTPS connection, as fast as it answers, until STOP_FILE
exists (or SECONDS pass); prints one line of JSON: count, p50/p99/max latency in ms.
   healthz_probe.py URL CA_FILE STOP_FILE [SECONDS]"""
import http.client
import json
import os
import ssl
import sys
import time
from urllib.parse import urlparse

url, ca, stop = sys.argv[1], sys.argv[2], sys.argv[3]
limit = float(sys.argv[4]) if len(sys.argv) > 4 else 600
u = urlparse(url)
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
lat, errors, t_end = [], 0, time.monotonic() + limit
while not os.path.exists(stop) and time.monotonic() < t_end:
    t0 = time.monotonic()
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            errors += 1
    except Exception:
        errors += 1
        conn.close()
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    lat.append((time.monotonic() - t0) * 1000)
    time.sleep(0.02)
lat.sort()
pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None
print(json.dumps({"requests": len(lat), "errors": errors, "p50_ms": pick(0.5),
                  "p99_ms": pick(0.99), "max_ms": round(lat[-1], 1) if lat else None}))
