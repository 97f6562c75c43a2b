#!/usr/bin/env python3
"""The bystander of ./deploy/dev.sh soak: like tests/integration/bystander.py (QoS 1 to its
own telemetry topic every INTERVAL ms over mutual TLS, one connection, opened again if the
server closes it), but it logs every sample so that soak.sh can take the p50/p99 of each
interval of a long run:

    soak_bystander.py CA CERT KEY PORT DEVICE_ID OUT.txt [INTERVAL_MS]

OUT.txt gets one line per PUBACK, "<unix time s> <round trip ms>", and "<unix time s> error"
for each connection lost. Runs until SIGTERM or SIGINT."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from mqtt_raw import Closed, Conn, tls_context  # noqa: E402

ca, cert, key, port, dev, out = sys.argv[1:7]
interval = (int(sys.argv[7]) if len(sys.argv) > 7 else 20) / 1000.0
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
ctx = tls_context(ca, cert, key)
conn, pid = None, 0
with open(out, "a", buffering=1) as f:
    while running:
        try:
            if conn is None:
                conn = Conn("127.0.0.1", int(port), ctx)
                conn.connect(dev, clean=True)
            pid = pid % 65535 + 1
            t0 = time.perf_counter()
            conn.publish("devices/%s/telemetry" % dev, b"bystander", qos=1, pid=pid)
            f.write("%.3f %.3f\n" % (time.time(), (time.perf_counter() - t0) * 1000.0))
        except (Closed, OSError, AssertionError):
            f.write("%.3f error\n" % time.time())
            conn = None
            time.sleep(0.2)
        time.sleep(interval)
