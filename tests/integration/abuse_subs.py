#!/usr/bin/env python3
"""A subscription burst (issue 19, third row): one device certificate adds distinct filters
under devices/<id>/... in blocks, while a bystander device (bystander.py) publishes QoS 1
every 50 ms and records its PUBACK latency.

    abuse_subs.py ENV.json [--blocks 3] [--block 8000] [--per-packet 50] [--window 8]
                           [--retained 1000] [--persistent] [--out RESULT.json]

ENV.json: {"ca", "port", "attacker": {"id", "cert", "key"}, "bystander": {"id", "cert",
"key"}}. First the attacker retains --retained messages under devices/<id>/r/<n> (so that
a SUBSCRIBE that scans every retained message shows), then the bystander runs 3 s alone
(baseline), then with the burst: SUBSCRIBE packets of --per-packet filters, at most
--window of them waiting for their SUBACK. One filter in 10 ends in "/#", one in 10 has a
'+'. Prints one line per block and the bystander's figures, and writes them as JSON:
{"blocks_s": [...], "baseline": {...}, "during": {...}, "refused": N}."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mqtt_raw import (PUBLISH, SUBACK, UNSUBACK, Conn, subscribe_pkt, tls_context,  # noqa: E402
                      unsubscribe_pkt)

ap = argparse.ArgumentParser()
ap.add_argument("env")
ap.add_argument("--blocks", type=int, default=3)
ap.add_argument("--block", type=int, default=8000)
ap.add_argument("--per-packet", type=int, default=50)
ap.add_argument("--window", type=int, default=8)
ap.add_argument("--retained", type=int, default=1000)
ap.add_argument("--persistent", action="store_true")
ap.add_argument("--churn", type=float, default=4.0)
ap.add_argument("--resend", type=float, default=0.0)
ap.add_argument("--interval-ms", type=int, default=50)
ap.add_argument("--out", default="abuse_subs.json")
a = ap.parse_args()
env = json.load(open(a.env))
att, bys = env["attacker"], env["bystander"]
port = int(env["port"])


def bystander(out):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "bystander.py"), env["ca"],
                             bys["cert"], bys["key"], str(port), bys["id"], out,
                             str(a.interval_ms)])


def stop(p, out):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=20)
    return json.load(open(out))


def filt(i):
    base = "devices/%s/s/%d" % (att["id"], i)
    if i % 10 == 3:
        return base + "/#"
    if i % 10 == 7:
        return "devices/%s/s/+/%d" % (att["id"], i)
    return base + "/x"


c = Conn("127.0.0.1", port, tls_context(env["ca"], att["cert"], att["key"]), timeout=30)
sp, rc = c.connect(att["id"], clean=not a.persistent)
assert rc == 0, "attacker CONNECT refused: %d" % rc
t_retained = time.monotonic()
for n in range(a.retained):
    c.publish("devices/%s/r/%d" % (att["id"], n), b"retained %d" % n, qos=1, retain=True,
              pid=n % 65535 + 1)

t_retained = time.monotonic() - t_retained
p = bystander("bystander_base.json")
time.sleep(3)
baseline = stop(p, "bystander_base.json")
print("bystander alone: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)"
      % (baseline["p50_ms"], baseline["p99_ms"], baseline["max_ms"], baseline["n"]), flush=True)

p = bystander("bystander_burst.json")
time.sleep(0.2)
blocks, refused, pid = [], 0, 0
for b in range(a.blocks):
    first = b * a.block
    packets = [[(filt(i), 1) for i in range(s, min(s + a.per_packet, first + a.block))]
               for s in range(first, first + a.block, a.per_packet)]
    t0, sent, acked = time.monotonic(), 0, 0
    while acked < len(packets):
        while sent < len(packets) and sent - acked < a.window:
            pid = pid % 65535 + 1
            c.send(subscribe_pkt(pid, packets[sent]))
            sent += 1
        ack = c.expect(SUBACK, timeout=120)
        refused += sum(1 for code in ack.body[2:] if code == 0x80)
        acked += 1
    blocks.append(time.monotonic() - t0)
    print("block %d: %d filters in %.2f s" % (b + 1, a.block, blocks[-1]), flush=True)


def pipeline(make, seconds):
    """Sends make(i) packets for `seconds`, at most --window unanswered; returns (packets
    answered, PUBLISH packets read)."""
    global pid
    end, sent, acked, pubs = time.monotonic() + seconds, 0, 0, 0
    while time.monotonic() < end or acked < sent:
        while time.monotonic() < end and sent - acked < a.window:
            pid = pid % 65535 + 1
            c.send(make(sent, pid))
            sent += 1
        p = c.read(timeout=60)
        assert p is not None, "no answer within 60 s"
        if p.type in (SUBACK, UNSUBACK):
            acked += 1
        elif p.type == PUBLISH:
            pubs += 1
    return acked, pubs


# Churn: a packet of filters unsubscribed, then subscribed again, over and over.
churn = [[(filt(i), 1) for i in range(s, s + a.per_packet)]
         for s in range(0, a.blocks * a.block, a.per_packet)]
if a.churn > 0:
    n, _ = pipeline(lambda k, pid: (unsubscribe_pkt(pid, [f for f, _ in churn[k // 2 % len(churn)]])
                                    if k % 2 == 0 else
                                    subscribe_pkt(pid, churn[k // 2 % len(churn)])), a.churn)
    print("churn: %d filters unsubscribed or subscribed again in %.0f s (%d per second)"
          % (n * a.per_packet, a.churn, n * a.per_packet / a.churn), flush=True)
time.sleep(0.5)
during = stop(p, "bystander_burst.json")
result = {"blocks_s": blocks, "baseline": baseline, "during": during, "refused": refused}
# Resend: a filter matching every retained message, subscribed again and again (each
# SUBSCRIBE sends them all again, MQTT 3.1.1 §3.8.4).
if a.resend > 0:
    p = bystander("bystander_resend.json")
    time.sleep(0.2)
    every = "devices/%s/r/#" % att["id"]
    n, pubs = pipeline(lambda k, pid: subscribe_pkt(pid, [(every, 0)] * 4), a.resend)
    print("resend: %d SUBSCRIBEs of 4 x %s, %d retained copies read in %.0f s"
          % (n, every, pubs, a.resend), flush=True)
    time.sleep(0.5)
    r = result["resend"] = stop(p, "bystander_resend.json")
    print("bystander during the resend: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d, errors %d)"
          % (r["p50_ms"], r["p99_ms"], r["max_ms"], r["n"], r["errors"]))
c.close()
print("bystander during the burst and churn: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d, "
      "errors %d)" % (during["p50_ms"], during["p99_ms"], during["max_ms"], during["n"],
                      during["errors"]))
print("refused filters: %d" % refused)
print("# retained stored in %.1f s" % t_retained)
json.dump(result, open(a.out, "w"))
