#!/usr/bin/env python3
"""Subscriptions stay right with the constant-time filter set and the retained index
(test_abuse_subs.sh): duplicate filters, unsubscribe and subscribe again, retained messages
on exact and wildcard filters (and after their deletion), a persistent session's thousand
filters kept across a reconnection and dropped by a clean one. TAP lines on stdout.

    abuse_subs_check.py ENV.json   (the same file as abuse_subs.py; "checker" is the device)"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_raw import PUBACK, UNSUBACK, Conn, ack_pkt, tls_context, unsubscribe_pkt  # noqa: E402
import tap  # noqa: E402

env = json.load(open(sys.argv[1]))
dev = env["checker"]
ctx = tls_context(env["ca"], dev["cert"], dev["key"])
port = int(env["port"])
D = "devices/%s" % dev["id"]


def conn(clean=True):
    c = Conn("127.0.0.1", port, ctx)
    sp, rc = c.connect(dev["id"], clean=clean)
    assert rc == 0
    return c, sp


def topics(pubs):
    return sorted(p.topic for p in pubs)


def unsubscribe(c, pid, filters):
    c.send(unsubscribe_pkt(pid, filters))
    c.expect(UNSUBACK)


c, _ = conn()
# Retained: exact, one level, several levels, the parent of a '#'.
for name in ("t", "t/a", "t/b", "t/b/c", "u/a", "u/b/a"):
    c.publish("%s/%s" % (D, name), ("r " + name).encode(), qos=1, retain=True, pid=1)
c.publish("%s/t/gone" % D, b"x", qos=1, retain=True, pid=2)
c.publish("%s/t/gone" % D, b"", qos=1, retain=True, pid=3)  # deleted

cases = [
    ("%s/t/a" % D, ["t/a"]),
    ("%s/t/#" % D, ["t", "t/a", "t/b", "t/b/c"]),
    ("%s/+/a" % D, ["t/a", "u/a"]),
    ("%s/+/+/a" % D, ["u/b/a"]),
    ("%s/t/+" % D, ["t/a", "t/b"]),
    ("%s/#" % D, ["t", "t/a", "t/b", "t/b/c", "u/a", "u/b/a"]),
    ("%s/t/gone" % D, []),
    ("%s/nothing/#" % D, []),
]
pid = 10
for f, want in cases:
    pid += 1
    tap.check(c.subscribe(pid, [(f, 0)]) == [0], "SUBSCRIBE %s granted" % f)
    got = c.publishes(len(want), timeout=3) + c.quiet(0.4)
    ok = topics(got) == sorted("%s/%s" % (D, w) for w in want) and all(p.retain for p in got)
    tap.check(ok, "%s: the retained messages it matches, once each, RETAIN set (%s)"
            % (f, ", ".join(want) or "none"))
    unsubscribe(c, pid, [f])

# Duplicates: the same filter twice in one packet and again in another is one subscription.
f = "%s/dup" % D
tap.check(c.subscribe(30, [(f, 1), (f, 0)]) == [1, 0], "a filter twice in one SUBSCRIBE: both granted")
tap.check(c.subscribe(31, [(f, 1)]) == [1], "the same filter again in another SUBSCRIBE")
c.publish(f, b"one", qos=1, pid=36)
got = c.publishes(1, timeout=3) + c.quiet(0.5)
tap.check(len(got) == 1 and got[0].qos == 1, "one copy at the last QoS granted (1), not three")
for p in got:
    c.send(ack_pkt(PUBACK, p.pid))
unsubscribe(c, 32, [f])
c.publish(f, b"two", qos=0)
tap.check(c.quiet(0.5) == [], "one UNSUBSCRIBE ends it: nothing delivered")
unsubscribe(c, 33, [f])  # not subscribed: still an UNSUBACK
tap.check(c.subscribe(34, [(f, 0)]) == [0], "subscribed again after the UNSUBSCRIBE")
c.publish(f, b"three", qos=0)
got = c.publishes(1, timeout=3)
tap.check(len(got) == 1 and got[0].payload == b"three", "delivered again after re-subscribing")
unsubscribe(c, 35, [f])

# Many filters, half of them removed (the set moves its entries): the rest still route.
fs = ["%s/m/%d" % (D, i) for i in range(3000)]
for i in range(0, 3000, 100):
    assert c.subscribe(100 + i // 100, [(x, 0) for x in fs[i:i + 100]]) == [0] * 100
for i in range(0, 3000, 200):
    unsubscribe(c, 200 + i // 200, fs[i:i + 200:2])
for i in (0, 1, 1500, 1501, 2998, 2999):
    c.publish(fs[i], b"m", qos=0)
got = c.publishes(3, timeout=3) + c.quiet(0.5)
tap.check(topics(got) == sorted(fs[i] for i in (1, 1501, 2999)),
        "3,000 filters, every other one unsubscribed: only the others deliver")
c.disconnect()

# A persistent session keeps its filters across a reconnection; a clean one drops them.
c, _ = conn(clean=False)
for i in range(0, 1000, 100):
    assert c.subscribe(300 + i // 100, [("%s/p/%d" % (D, j), 1) for j in range(i, i + 100)]) \
        == [1] * 100
c.disconnect()
c, sp = conn(clean=False)
tap.check(sp == 1, "persistent session with 1,000 filters resumed (session present)")
c.publish("%s/p/777" % D, b"kept", qos=0)
got = c.publishes(1, timeout=3)
tap.check(len(got) == 1 and got[0].topic == "%s/p/777" % D, "its filters still route after resuming")
c.disconnect()
c, sp = conn(clean=True)
c.publish("%s/p/777" % D, b"dropped", qos=0)
tap.check(sp == 0 and c.quiet(0.5) == [], "a clean session drops them: nothing delivered")
c.disconnect()
sys.exit(1 if tap.failed else 0)
