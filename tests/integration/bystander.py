#!/usr/bin/env python3
"""A bystander device for the abuse tests: publishes QoS 1 to its own telemetry topic every
INTERVAL ms over mutual TLS and records each PUBACK's round trip.

    bystander.py CA CERT KEY PORT DEVICE_ID OUT.json [INTERVAL_MS]

Runs until SIGTERM or SIGINT, then writes {"n", "p50_ms", "p99_ms", "max_ms", "errors"} to
OUT.json (also on every 100th sample, so a reader can look while it runs). A test starts it,
lets it settle, runs the attack, stops it and asserts on p99_ms."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_raw import Closed, Conn, tls_context  # noqa: E402

ca, cert, key, port, dev, out = sys.argv[1:7]
interval = (int(sys.argv[7]) if len(sys.argv) > 7 else 20) / 1000.0
samples, errors, running = [], 0, True


def stop(*_):
    global running
    running = False


def write():
    s = sorted(samples)

    def pct(p):
        return round(s[min(len(s) - 1, int(len(s) * p))], 3) if s else None
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"n": len(s), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                   "max_ms": round(s[-1], 3) if s else None, "errors": errors}, f)
    os.replace(tmp, out)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
ctx = tls_context(ca, cert, key)
conn, pid = None, 0
while running:
    try:
        if conn is None:
            conn = Conn("127.0.0.1", int(port), ctx)
            conn.connect(dev, clean=True)
        pid = pid % 65535 + 1
        t0 = time.perf_counter()
        conn.publish("devices/%s/telemetry" % dev, b"bystander", qos=1, pid=pid)
        samples.append((time.perf_counter() - t0) * 1000.0)
        if len(samples) % 100 == 0:
            write()
    except (Closed, OSError, AssertionError):
        errors += 1
        conn = None
        time.sleep(0.2)
    time.sleep(interval)
write()
