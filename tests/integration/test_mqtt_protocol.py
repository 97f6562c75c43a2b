#!/usr/bin/env python3
"""MQTT 3.1/3.1.1 protocol checks of iothubd's mutual-TLS listener over raw TLS sockets
(SPEC §6), driven by test_mqtt_protocol.sh, which provisions the devices and services through
the REST API and passes their ids, certificates and keys in a JSON file (argv[1]).

Python standard library only: the raw MQTT client of mqtt_raw.py. Prints TAP-like
"ok - name" / "not ok - name" lines; exits 1 when a check failed. Every socket has a
timeout, so nothing here can hang."""

import json
import os
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import mqtt_raw
import tap
from mqtt_raw import (CONNACK, PINGREQ_PKT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, UNSUBACK,
                      Closed, ack_pkt, connect_pkt, enc_len, enc_str, packet, publish_pkt,
                      tls_context, unsubscribe_pkt)
from tap import check

ENV = json.load(open(sys.argv[1]))
HOST = "127.0.0.1"
PORT = ENV["mqtt_port"]
DEV = ENV["devices"]    # name -> {"id", "cert", "key"}
SVC = ENV["services"]   # name -> {"id", "cert", "key"}

# ---- reporting ----------------------------------------------------------------------------


def group(fn):
    """Runs a group of checks; an exception counts as one failure named after the group."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any failure of the group is reported
        check(False, "%s: completed without error (%s: %s)" % (fn.__name__, type(e).__name__, e))
        traceback.print_exc(file=sys.stderr)
    return fn

# ---- TLS connections ----------------------------------------------------------------------


CONTEXTS = {}


def context(cert=None, key=None):
    """One SSLContext per identity (session tickets are only reusable with the same one)."""
    if (cert, key) not in CONTEXTS:
        CONTEXTS[(cert, key)] = tls_context(ENV["ca"], cert, key)
    return CONTEXTS[(cert, key)]


class Conn(mqtt_raw.Conn):
    """A connection to the hub's MQTT port as `who` (or cert/key, or no certificate)."""

    def __init__(self, who=None, cert=None, key=None, timeout=5.0, session=None):
        if who is not None:
            cert, key = who["cert"], who["key"]
        super().__init__(HOST, PORT, context(cert, key), timeout, session)


def session(who, client_id=None, clean=True, keepalive=60, will=None):
    """A connected MQTT client for `who`; asserts CONNACK accepted."""
    c = Conn(who)
    sp, rc = c.connect(client_id or "t-%s" % who["id"][:8], clean=clean, keepalive=keepalive,
                       will=will)
    assert rc == 0, "CONNACK return code %d" % rc
    c.session_present = sp
    return c


def refusal(cert=None, key=None, session_=None):
    """How a TLS connection with this certificate is refused an MQTT session (mqtt_raw.refusal:
    the TLS alert's name, "closed", "CONNACK n"), None when it is accepted."""
    return mqtt_raw.refusal(HOST, PORT, context(cert, key), session_)


def alive():
    """iothubd still runs and answers /healthz with 200."""
    try:
        os.kill(ENV["server_pid"], 0)
        with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % ENV["api_port"], timeout=5,
                                    context=ssl.create_default_context(cafile=ENV["ca"])) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def logged(text):
    """True when the server's log holds text."""
    with open(ENV["log"], errors="replace") as f:
        return text in f.read()


def api(method, path, token, body=None):
    """A REST API call; returns (status, parsed JSON or None)."""
    ctx = ssl.create_default_context(cafile=ENV["ca"])
    req = urllib.request.Request("https://127.0.0.1:%d%s" % (ENV["api_port"], path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            data = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        data, status = e.read(), e.code
    try:
        return status, json.loads(data)
    except ValueError:
        return status, None


def topic(name, rest):
    return "devices/%s/%s" % (DEV[name]["id"], rest)

# ---- CONNECT timeout, watched in the background ---------------------------------------------


connect_timeout = {}


def watch_connect_timeout():
    """A TLS connection that never sends CONNECT: closed after 10 s (CONNECT timeout)."""
    try:
        c = Conn(DEV["m"], timeout=20)
        t0 = time.monotonic()
        connect_timeout["closed"] = c.closed_within(16)
        connect_timeout["after"] = time.monotonic() - t0
        c.close()
    except Exception as e:  # noqa: BLE001
        connect_timeout["error"] = repr(e)


watcher = threading.Thread(target=watch_connect_timeout, daemon=True)
watcher.start()

# ---- CONNECT / CONNACK --------------------------------------------------------------------


def connect_versions():
    c = Conn(DEV["a"])
    c.send(connect_pkt("a-311", level=4))
    p = c.expect(CONNACK)
    check(p.flags == 0 and p.body == b"\x00\x00",
          "CONNECT 3.1.1 (\"MQTT\", level 4) -> CONNACK accepted, session present 0", p)
    check(c.ping(), "PINGREQ -> PINGRESP")
    c.disconnect()

    c = Conn(DEV["a"])
    c.send(connect_pkt("a-31", proto="MQIsdp", level=3))
    p = c.expect(CONNACK)
    check(p.body == b"\x00\x00" and c.ping(),
          "CONNECT 3.1 (\"MQIsdp\", level 3) -> CONNACK accepted; PINGREQ answered", p)
    c.disconnect()

    for proto, level in (("MQTT", 7), ("MQTT", 3), ("MQIsdp", 4)):
        c = Conn(DEV["a"])
        c.send(connect_pkt("a-bad", proto=proto, level=level))
        p = c.read(3)
        check(p is not None and p.type == CONNACK and p.body == b"\x00\x01" and c.closed_within(2),
              "CONNECT \"%s\" with the unacceptable level %d -> CONNACK 0x01, then closed" %
              (proto, level), p)
        c.close()

    c = Conn(DEV["a"])
    c.send(connect_pkt("", clean=False))
    p = c.read(3)
    check(p is not None and p.type == CONNACK and p.body == b"\x00\x02" and c.closed_within(2),
          "CONNECT 3.1.1 with an empty client id and clean session 0 -> CONNACK 0x02, closed", p)
    c.close()

    c = Conn(DEV["a"])
    sp, rc = c.connect("", clean=True)
    check(rc == 0, "CONNECT 3.1.1 with an empty client id and clean session 1 -> accepted")
    c.disconnect()

    c = Conn(DEV["a"])
    c.send(PINGREQ_PKT)
    p = None
    try:
        p = c.read(3)
    except Closed:
        pass
    check(p is None and c.closed_within(3), "a first packet that is not CONNECT (PINGREQ) -> "
          "closed without an answer", p)
    c.close()

    c = session(DEV["a"])
    c.send(connect_pkt("again"))
    check(c.closed_within(3), "a second CONNECT on a connection -> closed")
    c.close()

# ---- QoS 2 --------------------------------------------------------------------------------


def qos2():
    c = session(DEV["a"], "a-qos2")
    t = topic("a", "q2")
    check(c.subscribe(1, [(t, 2)]) == [2], "SUBSCRIBE at QoS 2 -> granted 2")
    c.send(publish_pkt(t, "exactly-once", qos=2, pid=10))
    rec = c.expect(PUBREC)
    check(rec.pid == 10 and rec.flags == 0, "client -> server QoS 2: PUBLISH -> PUBREC (same id)",
          rec)
    c.send(publish_pkt(t, "exactly-once", qos=2, pid=10, dup=True))
    rec = c.expect(PUBREC)
    check(rec.pid == 10, "a duplicate QoS 2 PUBLISH (same id, DUP) before PUBREL -> PUBREC again")
    c.send(ack_pkt(PUBREL, 10))
    comp = c.expect(PUBCOMP)
    check(comp.pid == 10 and comp.flags == 0, "PUBREL -> PUBCOMP (same id)", comp)

    got = c.publishes(3, 1.5)
    check(len(got) == 1 and got[0].payload == b"exactly-once" and got[0].qos == 2,
          "the QoS 2 message published twice with the same id is delivered once", got)
    d = got[0]
    c.send(ack_pkt(PUBREC, d.pid))
    rel = c.expect(PUBREL)
    check(rel.pid == d.pid and rel.flags == 0x02,
          "server -> client QoS 2: PUBLISH (QoS 2) -> PUBREC -> PUBREL (flags 0010, same id)", rel)
    c.send(ack_pkt(PUBCOMP, d.pid))
    check(c.ping() and not c.quiet(0.5), "-> PUBCOMP completes the delivery: nothing is resent")

    c.send(publish_pkt(t, "same-id-again", qos=2, pid=10))
    c.expect(PUBREC)
    c.send(ack_pkt(PUBREL, 10))
    c.expect(PUBCOMP)
    got = c.publishes(1, 2)
    check(len(got) == 1 and got[0].payload == b"same-id-again",
          "after PUBCOMP the packet id is free: a new QoS 2 message with it is delivered", got)
    if got:
        c.send(ack_pkt(PUBREC, got[0].pid))
        c.expect(PUBREL)
        c.send(ack_pkt(PUBCOMP, got[0].pid))
    c.disconnect()

# ---- persistent sessions ------------------------------------------------------------------


def persistent_sessions():
    b = DEV["b"]
    t = topic("b", "commands/#")
    c = session(b, "b-persist", clean=True)  # start from no session at all
    c.disconnect()
    c = session(b, "b-persist", clean=False)
    check(c.session_present == 0, "CONNECT clean 0 without a stored session -> session present 0")
    check(c.subscribe(1, [(t, 1)]) == [1], "persistent session: SUBSCRIBE at QoS 1 -> granted 1")
    c.publish(topic("b", "commands/first"), "m1", qos=1, pid=1)
    first = c.expect(PUBLISH)
    check(first.qos == 1 and not first.dup and first.payload == b"m1",
          "QoS 1 delivery to the subscriber (DUP 0)", first)
    c.close()  # without PUBACK, without DISCONNECT
    time.sleep(0.2)

    c = session(b, "b-persist", clean=False)
    check(c.session_present == 1, "reconnect with clean 0 -> CONNACK session present 1")
    again = c.expect(PUBLISH)
    check(again.dup and again.pid == first.pid and again.qos == 1 and again.payload == b"m1" and
          again.topic == first.topic,
          "the unacknowledged QoS 1 message is sent again with DUP 1 and the same packet id", again)
    c.send(ack_pkt(PUBACK, again.pid))
    c.ping()
    c.disconnect()
    c = session(b, "b-persist", clean=False)
    check(c.session_present == 1 and not c.quiet(0.7),
          "once acknowledged it is not sent again after a reconnect")
    c.disconnect()

    # Published by a service while the device is offline: queued, delivered on reconnect.
    svc = session(SVC["svc1"], "svc1-publisher")
    for i in (2, 3, 4):
        svc.publish(topic("b", "commands/n%d" % i), "m%d" % i, qos=1, pid=i)
    svc.publish(topic("b", "commands/q0"), "qos0-while-offline", qos=0)
    svc.ping()
    c = session(b, "b-persist", clean=False)
    got = c.publishes(3, 3)
    check(c.session_present == 1 and [p.payload for p in got] == [b"m2", b"m3", b"m4"] and
          all(p.qos == 1 and p.topic.endswith("/n%d" % (i + 2)) for i, p in enumerate(got)),
          "QoS 1 messages published while the persistent session was offline arrive on "
          "reconnect, in order", got)
    for p in got:
        c.send(ack_pkt(PUBACK, p.pid))
    c.ping()
    c.disconnect()

    # A clean session discards the stored one and what it queued.
    svc.publish(topic("b", "commands/n5"), "m5", qos=1, pid=5)
    svc.ping()
    c = session(b, "b-other-client-id", clean=True)
    check(c.session_present == 0 and not c.quiet(0.7),
          "CONNECT clean 1: session present 0 and the queued message is discarded")
    c.disconnect()
    c = session(b, "b-persist", clean=False)
    check(c.session_present == 0 and not c.quiet(0.5),
          "after a clean session ended, clean 0 finds no session (session present 0)")
    c.disconnect()
    svc.disconnect()

# ---- retained messages --------------------------------------------------------------------


def retained():
    a = DEV["a"]
    t = topic("a", "state")
    c = session(a, "a-retain")
    c.publish(t, "on", qos=1, retain=True, pid=1)
    check(c.subscribe(2, [(t, 1)]) == [1], "SUBSCRIBE after a retained PUBLISH -> granted 1")
    p = c.expect(PUBLISH)
    check(p.retain and p.payload == b"on" and p.qos == 1,
          "the retained message is delivered to the new subscription with RETAIN 1", p)
    c.send(ack_pkt(PUBACK, p.pid))
    c.publish(t, "off", qos=1, retain=True, pid=3)
    p = c.expect(PUBLISH)
    check(not p.retain and p.payload == b"off",
          "a retained PUBLISH reaches existing subscriptions with RETAIN 0", p)
    c.send(ack_pkt(PUBACK, p.pid))

    s = session(SVC["svc1"], "svc1-retain")
    check(s.subscribe(1, [("devices/+/state", 0)]) == [0], "service SUBSCRIBE devices/+/state")
    p = s.expect(PUBLISH)
    check(p.retain and p.payload == b"off" and p.topic == t and p.qos == 0,
          "another client (a service) gets the latest retained message, RETAIN 1, at its QoS", p)
    s.disconnect()

    c.publish(t, "", qos=1, retain=True, pid=4)
    p = c.expect(PUBLISH)  # the empty message itself, to the live subscription
    c.send(ack_pkt(PUBACK, p.pid))
    c.send(unsubscribe_pkt(5, [t]))
    check(c.expect(UNSUBACK).pid == 5, "UNSUBSCRIBE -> UNSUBACK")
    check(c.subscribe(6, [(t, 1)]) == [1] and not c.quiet(0.7),
          "an empty retained PUBLISH clears the retained message: a new subscription gets none")
    c.disconnect()

# ---- wildcards ----------------------------------------------------------------------------


def wildcards():
    c = session(DEV["a"], "a-wild")
    codes = c.subscribe(1, [(topic("a", "+/temp"), 0), (topic("a", "sensors/#"), 0)])
    check(codes == [0, 0], "SUBSCRIBE devices/<id>/+/temp and devices/<id>/sensors/# -> granted",
          codes)
    sent = [("room1/temp", "plus"), ("room1/hum", "no-1"), ("room1/x/temp", "no-2"),
            ("sensors", "hash-parent"), ("sensors/a/b", "hash-deep"), ("sensorsX", "no-3"),
            ("temp", "no-4"), ("room2/temp", "end")]
    for i, (rest, payload) in enumerate(sent):
        c.publish(topic("a", rest), payload, qos=1, pid=i + 1)
    got = c.publishes(5, 1.5)
    check([p.payload for p in got][:4] == [b"plus", b"hash-parent", b"hash-deep", b"end"] and
          len(got) == 4, "'+' matches exactly one level, '#' the parent and every level below",
          got)
    check(all(p.qos == 0 for p in got), "QoS 1 PUBLISHes reach QoS 0 subscriptions at QoS 0", got)

    check(c.subscribe(2, [(topic("a", "+/+"), 1)]) == [1], "an overlapping SUBSCRIBE at QoS 1")
    c.publish(topic("a", "room3/temp"), "twice-matched", qos=1, pid=20)
    got = c.publishes(2, 1.5)
    check(len(got) == 1 and got[0].qos == 1,
          "a topic matched by two filters of the session is delivered once, at the higher QoS",
          got)
    for p in got:
        c.send(ack_pkt(PUBACK, p.pid))
    c.send(unsubscribe_pkt(3, [topic("a", "sensors/#")]))
    c.expect(UNSUBACK)
    c.publish(topic("a", "sensors/z/deep"), "after-unsubscribe", qos=0)
    check(not c.quiet(0.7), "after UNSUBSCRIBE the filter no longer matches")
    c.disconnect()


def dollar_topics():
    s2 = SVC["svc2"]
    subs = {}
    for cid, f in (("all", "#"), ("plus", "+/x"), ("dollar", "$test/#")):
        subs[cid] = session(s2, "svc2-" + cid)
        check(subs[cid].subscribe(1, [(f, 0)]) == [0], "service SUBSCRIBE %s -> granted" % f)
    pub = session(s2, "svc2-pub")
    pub.publish("$test/x", "dollar", qos=1, pid=1)
    pub.publish("test/x", "plain", qos=1, pid=2)

    def mine(conn):
        return [(p.topic, p.payload) for p in conn.quiet(1.0) if p.topic.endswith("test/x")]
    got = {cid: mine(conn) for cid, conn in subs.items()}
    check(got["all"] == [("test/x", b"plain")], "'#' does not match the $-topic $test/x", got)
    check(got["plus"] == [("test/x", b"plain")], "'+/x' does not match the $-topic $test/x", got)
    check(got["dollar"] == [("$test/x", b"dollar")], "'$test/#' matches $test/x", got)

    d = session(DEV["a"], "a-dollar")
    check(d.subscribe(1, [("$SYS/#", 0), ("$test/#", 0)]) == [0x80, 0x80],
          "a device may not subscribe to $-topics (0x80)")
    d.publish("$test/x", "from-device", qos=1, pid=1)
    check(not subs["dollar"].quiet(0.7),
          "a device PUBLISH to a $-topic is acknowledged but dropped")
    d.disconnect()
    for conn in list(subs.values()) + [pub]:
        conn.disconnect()

# ---- wills, keepalive ---------------------------------------------------------------------


def wills_and_keepalive():
    watch = session(SVC["svc1"], "svc1-watch")
    check(watch.subscribe(1, [("devices/+/status", 1)]) == [1],
          "service SUBSCRIBE devices/+/status -> granted 1")
    w, k, k2 = DEV["w"], DEV["k"], DEV["k2"]

    c = session(w, "w", will=(topic("w", "status"), b"gone", 1, False))
    c.ping()
    c.close()  # TCP/TLS closed without DISCONNECT
    got = watch.publishes(1, 3)
    check(len(got) == 1 and got[0].payload == b"gone" and got[0].topic == topic("w", "status"),
          "socket closed without DISCONNECT -> the will is published", got)
    for p in got:
        watch.send(ack_pkt(PUBACK, p.pid))

    # The will also reaches the device's own persistent session, as a first delivery.
    c = session(w, "w-own", clean=False, will=(topic("w", "status"), b"own-will", 1, False))
    c.subscribe(1, [(topic("w", "status"), 1)])
    c.close()
    for p in watch.publishes(1, 3):
        watch.send(ack_pkt(PUBACK, p.pid))
    c = session(w, "w-own", clean=False)
    got = c.publishes(1, 3)
    check(c.session_present == 1 and len(got) == 1 and got[0].payload == b"own-will" and
          not got[0].dup, "a will matching the device's own persistent session is delivered "
          "on reconnect, as a first attempt (DUP 0)", got)
    for p in got:
        c.send(ack_pkt(PUBACK, p.pid))
    c.send(unsubscribe_pkt(2, [topic("w", "status")]))
    c.expect(UNSUBACK)
    c.disconnect()
    c = session(w, "w-own", clean=True)  # back to no stored session
    c.disconnect()

    c = session(w, "w", will=(topic("w", "status"), b"not-after-disconnect", 1, False))
    c.disconnect()
    check(not watch.quiet(1.0), "after DISCONNECT the will is not published")

    c = session(w, "w", will=(topic("w", "status"), b"protocol-error", 1, False))
    c.send(b"\x30\xff\xff\xff\xff\xff")
    got = watch.publishes(1, 3)
    check(c.closed_within(3) and len(got) == 1 and got[0].payload == b"protocol-error",
          "connection closed for a protocol error -> the will is published", got)
    for p in got:
        watch.send(ack_pkt(PUBACK, p.pid))
    c.close()

    # keepalive 2 s: a silent client is closed after 1.5 x 2 s; a pinging one is kept.
    silent = session(k, "k", keepalive=2, will=(topic("k", "status"), b"timeout", 1, False))
    t0 = time.monotonic()
    pinger = session(k2, "k2", keepalive=2)
    closed_after, pings_ok = None, True
    while time.monotonic() - t0 < 6.0:
        pings_ok = pinger.ping() and pings_ok
        if closed_after is None and silent.closed_within(1.0):
            closed_after = time.monotonic() - t0
        elif closed_after is not None:
            time.sleep(1.0)
    check(closed_after is not None and 2.9 <= closed_after <= 5.0,
          "keepalive 2, nothing sent: closed after %s s (1.5 x keepalive, checked each second)"
          % (None if closed_after is None else round(closed_after, 2)))
    got = watch.publishes(1, 2)
    check(len(got) == 1 and got[0].payload == b"timeout", "the keepalive expiry publishes the will",
          got)
    for p in got:
        watch.send(ack_pkt(PUBACK, p.pid))
    check(pings_ok and not pinger.eof, "keepalive 2 with PINGREQ every second: still connected "
          "after 6 s")
    pinger.disconnect()
    silent.close()
    watch.disconnect()

# ---- malformed and oversized packets, takeover --------------------------------------------


def malformed():
    m = DEV["m"]
    other = session(DEV["c"], "c-bystander")
    c = session(m, "m")
    c.send(b"\x30\xff\xff\xff\xff\xff")
    check(c.closed_within(3), "a remaining length of 5 bytes 0xFF -> connection closed")
    c.close()
    check(other.ping(), "another client keeps working (PINGREQ answered)")
    c = session(m, "m")
    check(c.ping(), "and new connections are accepted")

    t = topic("m", "big")
    check(c.subscribe(1, [(t, 0)]) == [0], "SUBSCRIBE to its own topic for large messages")
    body = len(enc_str(t))
    fits = 256 * 1024 - 4 - body  # 1 type byte + 3 length bytes + topic + payload = 256 KiB
    pkt = publish_pkt(t, b"x" * fits)
    assert len(pkt) == 256 * 1024
    c.send(pkt)
    p = c.expect(PUBLISH, 10)
    check(len(p.payload) == fits, "a 256 KiB PUBLISH (the limit) is accepted and delivered")
    try:
        c.send(publish_pkt(t, b"x" * (fits + 1)))
    except OSError:
        pass
    check(c.closed_within(3), "a PUBLISH of 256 KiB + 1 byte -> connection closed")
    c.close()
    try:
        c = session(m, "m")
        c.send(packet(PUBLISH, 0, b"")[:1] + enc_len(100 * 1024 * 1024))
        check(c.closed_within(3), "a header announcing 100 MiB -> closed at once")
        c.close()
    except OSError as e:
        check(False, "a header announcing 100 MiB -> closed at once", e)
    check(other.ping(), "the bystander still works")
    other.disconnect()


def takeover():
    t = DEV["t"]
    first = session(t, "t-first", clean=False)
    first.subscribe(1, [(topic("t", "x"), 1)])
    second = session(t, "t-second-client-id", clean=False)
    check(first.closed_within(2),
          "a second connection of the device (another client id) closes the first")
    check(second.session_present == 1 and second.ping(),
          "the second connection took the session over (session present 1) and works")
    second.publish(topic("t", "x"), "still-subscribed", qos=1, pid=1)
    got = second.publishes(1, 2)
    check(len(got) == 1 and got[0].payload == b"still-subscribed",
          "the taken-over session keeps its subscriptions", got)
    first.close()
    status, d = api("GET", "/v1/devices/%s" % t["id"], ENV["operator"])
    check(status == 200 and d["connected"] is True,
          "GET /v1/devices/{id} after the takeover: connected true", (status, d))
    second.disconnect()
    deadline = time.monotonic() + 3
    while True:
        status, d = api("GET", "/v1/devices/%s" % t["id"], ENV["operator"])
        if (status == 200 and d["connected"] is False) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check(status == 200 and d["connected"] is False,
          "once the connection that took over is gone: connected false", (status, d))

    # Service consumers are told apart by their whole client id, however long.
    prefix = "svc1-consumer-" + "x" * 80
    one = session(SVC["svc1"], prefix + "-one")
    two = session(SVC["svc1"], prefix + "-two")
    check(not one.closed_within(0.7) and one.ping() and two.ping(),
          "two service consumers whose 94-byte client ids differ only at the end both stay")
    one.close()
    two.close()
    c = Conn(SVC["svc1"])
    sp, rc = c.connect("c" * 257)
    check(rc == 2 and c.closed_within(2), "a 257-byte client id -> CONNACK 2 and closed", rc)
    c.close()

# ---- limits --------------------------------------------------------------------------------


def inflight_and_queue():
    q = DEV["q"]
    c = session(q, "q", clean=True)
    t = topic("q", "flow")
    c.subscribe(1, [(t, 1)])
    for i in range(40):
        c.publish(t, "f%d" % i, qos=1, pid=i + 1)
    got = c.publishes(40, 2)
    check(len(got) == 32, "40 QoS 1 messages, none acknowledged: 32 in flight (got %d)" % len(got))
    if got:
        c.send(ack_pkt(PUBACK, got[0].pid))
        more = c.publishes(2, 1)
        check(len(more) == 1 and more[0].payload == b"f32",
              "one PUBACK lets exactly one more through, in order", more)
        got += more
    for p in got[1:]:
        c.send(ack_pkt(PUBACK, p.pid))
    rest = c.publishes(7, 3) + c.quiet(0.3)
    got += rest
    for p in rest:
        c.send(ack_pkt(PUBACK, p.pid))
    check([p.payload for p in got] == [b"f%d" % i for i in range(40)],
          "all 40 arrive in order once acknowledged")

    # 1050 more while not acknowledging: the session keeps 1000, the rest is dropped.
    c.publish(t, "sync", qos=1, pid=1)
    sync = c.expect(PUBLISH)
    c.send(ack_pkt(PUBACK, sync.pid))
    c.ping()
    batch = b"".join(publish_pkt(t, "g%d" % i, qos=1, pid=i % 60000 + 1) for i in range(1050))
    c.send(batch)
    acks = 0
    while acks < 1050:
        p = c.expect(PUBACK, 10)
        acks += 1
    received = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        p = c.read(1.0)
        if p is None:
            break
        if p.type == PUBLISH:
            received.append(p.payload)
            c.send(ack_pkt(PUBACK, p.pid))
    check(len(received) == 1000 and received == [b"g%d" % i for i in range(1000)],
          "a session keeps at most 1000 QoS 1 messages: the first 1000 of 1050 arrive (got %d)" %
          len(received))
    c.disconnect()

# ---- ACLs ----------------------------------------------------------------------------------


def device_acl():
    a, cdev = DEV["a"], DEV["c"]
    victim = session(cdev, "c-victim")
    check(victim.subscribe(1, [(topic("c", "#"), 1)]) == [1], "device SUBSCRIBE devices/<its id>/#")
    att = session(a, "a-attacker")
    att.publish(topic("c", "commands/reboot"), "forged", qos=1, pid=7)
    check(True, "a PUBLISH to devices/<other id>/... is acknowledged (PUBACK, 3.1.1 drop)")
    check(not victim.quiet(0.7), "... and not delivered to the other device")
    victim.publish(topic("c", "commands/self"), "own", qos=1, pid=2)
    got = victim.publishes(1, 2)
    check(len(got) == 1 and got[0].payload == b"own", "the device's own PUBLISH is delivered", got)
    for p in got:
        victim.send(ack_pkt(PUBACK, p.pid))
    codes = att.subscribe(3, [(topic("c", "#"), 1)])
    check(codes == [0x80], "device SUBSCRIBE devices/<other id>/# -> 0x80", codes)
    codes = att.subscribe(4, [(topic("a", "ok"), 1), ("devices/+/telemetry", 1), ("#", 0),
                              ("devices/%s" % a["id"], 2)])
    check(codes == [1, 0x80, 0x80, 2], "mixed SUBSCRIBE: own topics granted, devices/+/..., # "
          "refused (0x80) in the same SUBACK", codes)
    att.disconnect()
    victim.disconnect()


def service_acl():
    s = session(SVC["svc1"], "svc1-acl")
    cases = [("devices/+/telemetry", 1), ("devices/+/secret", 0x80), ("devices/#", 0x80),
             ("devices/%s/secret" % DEV["a"]["id"], 0x80), ("devices/+/+", 0x80),
             ("devices/%s/#" % DEV["a"]["id"], 0x80), ("other/topic", 0x80), ("#", 0x80)]
    codes = s.subscribe(1, [(f, 1) for f, _ in cases])
    check(codes == [want for _, want in cases],
          "service subscribe [devices/#, !devices/+/secret]: devices/+/telemetry granted; "
          "devices/+/secret and every overlapping filter refused (0x80), others refused",
          list(zip([f for f, _ in cases], codes)))
    victim = session(DEV["c"], "c-svc")
    victim.subscribe(1, [(topic("c", "#"), 1)])
    s.publish(topic("c", "commands/forbidden"), "denied", qos=1, pid=2)
    s.publish(topic("c", "telemetry"), "not-in-publish-list", qos=1, pid=3)
    s.publish(topic("c", "commands/go"), "allowed", qos=1, pid=4)
    got = victim.publishes(3, 1.5)
    check([p.payload for p in got] == [b"allowed"], "service publish [devices/+/commands/#, "
          "!devices/+/commands/forbidden]: only the allowed command reaches the device", got)
    for p in got:
        victim.send(ack_pkt(PUBACK, p.pid))
    s.disconnect()
    victim.disconnect()

# ---- certificates --------------------------------------------------------------------------


def certificates():
    why = refusal()
    check(why == "closed" and alive(), "no client certificate -> the handshake is closed "
          "(iothubd still up)", why)
    o = ENV["other_ca"]
    why = refusal(o["cert"], o["key"])
    check(why == "TLSV1_ALERT_UNKNOWN_CA" and logged("not correctly signed by the trusted CA")
          and alive(), "a certificate from another CA (CN of a real device) -> refused with the "
          "alert unknown CA, logged", why)
    e = ENV.get("expired")
    if e:
        why = refusal(e["cert"], e["key"])
        check(why == "SSLV3_ALERT_CERTIFICATE_EXPIRED" and logged("validity has expired") and
              alive(), "an expired certificate from the issuing CA -> refused with the alert "
              "certificate expired, logged", why)
    s_old = ENV["superseded"]
    why = refusal(s_old["cert"], s_old["key"])
    check(why == "SSLV3_ALERT_CERTIFICATE_REVOKED" and alive(),
          "the certificate superseded by a re-activation -> refused with the alert certificate "
          "revoked", why)
    c = session(DEV["s"], "s-new")
    check(c.ping(), "the re-activated device's new certificate is accepted")
    c.disconnect()


def revocation():
    r = DEV["r"]
    first = Conn(r)
    ticket = first.s.session
    first.connect("r-first")
    first.disconnect()
    resumed = Conn(r, session=ticket)
    check(resumed.s.session_reused, "TLS session resumption works before the revocation")
    resumed.close()

    c = session(r, "r-live")
    c.subscribe(1, [(topic("r", "commands/#"), 1)])
    c.ping()
    sent = time.monotonic()
    status, body = api("POST", "/v1/devices/%s/revoke" % r["id"], ENV["operator"],
                       {"reason": "keyCompromise"})
    t0 = time.monotonic()
    closed = c.closed_within(3)
    dt = time.monotonic() - t0
    check(status == 200, "POST /v1/devices/{id}/revoke -> 200", (status, body))
    check(closed and dt < 1.0, "the live session is closed within 1 s of the revocation "
          "(EOF %.3f s after the API answered, %.3f s after the request was sent)" %
          (dt, time.monotonic() - sent))
    c.close()
    why = refusal(r["cert"], r["key"])
    check(why == "SSLV3_ALERT_CERTIFICATE_REVOKED" and alive(),
          "the revoked certificate is refused at the handshake (alert certificate revoked)", why)
    why = refusal(r["cert"], r["key"], session_=ticket)
    check(why == "SSLV3_ALERT_CERTIFICATE_REVOKED" and alive(),
          "the revoked certificate is refused on TLS session resumption too (alert certificate "
          "revoked)", why)


group(connect_versions)
group(qos2)
group(persistent_sessions)
group(retained)
group(wildcards)
group(dollar_topics)
group(wills_and_keepalive)
group(malformed)
group(takeover)
group(inflight_and_queue)
group(device_acl)
group(service_acl)
group(certificates)
group(revocation)

watcher.join(20)
check(connect_timeout.get("closed") and 9.5 <= connect_timeout["after"] <= 12.5,
      "a TLS connection that sends no CONNECT is closed after 10 s (%s)" % (
          round(connect_timeout["after"], 2) if "after" in connect_timeout else connect_timeout))
sys.exit(1 if tap.failed else 0)
