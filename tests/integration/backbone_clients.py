#!/usr/bin/env python3
"""MQTT clients for test_backbone*.sh (paho-mqtt 1.6, Debian's python3-paho-mqtt).

sub HOST PORT USER PASS FILTER QOS OUT [--v5] [--seconds S] [--count N] [--client-id ID]
    subscribes (clean session), writes "READY" to OUT once the SUBACK came, then one line
    "<qos> <retain> <topic> <payload>" per message (flushed); exits after S seconds (default 30)
    or N messages. USER "-" connects without credentials (a backend on the backbone).
pub HOST PORT USER PASS TOPIC QOS COUNT PREFIX ACKED [--retain] [--pace MS]
    publishes PREFIX0 .. PREFIX<COUNT-1> in order; a QoS 1 message is sent once the previous
    one was acknowledged (PUBACK), and its number is then appended to ACKED (flushed). A lost
    connection is reconnected; what was not acknowledged is resent by paho. Exits 0 when all
    were acknowledged within 60 s.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt


def connect(host, port, user, pw, v5=False, client_id=""):
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    if v5:
        c = mqtt.Client(client_id=client_id, protocol=proto)
    else:
        c = mqtt.Client(client_id=client_id, clean_session=True, protocol=proto)
    if user != "-":
        c.username_pw_set(user, pw)
    c.connect(host, int(port), keepalive=30)
    return c


def sub(argv):
    host, port, user, pw, flt, qos, out = argv[:7]
    opts = argv[7:]
    seconds = float(opts[opts.index("--seconds") + 1]) if "--seconds" in opts else 30.0
    count = int(opts[opts.index("--count") + 1]) if "--count" in opts else 0
    cid = opts[opts.index("--client-id") + 1] if "--client-id" in opts else ""
    v5 = "--v5" in opts
    f = open(out, "w", buffering=1)
    got = [0]
    done = threading.Event()

    def on_connect(c, userdata, flags, rc, props=None):
        c.subscribe(flt, int(qos))

    def on_subscribe(c, userdata, mid, granted, props=None):
        f.write("READY\n")

    def on_message(c, userdata, m):
        f.write("%d %d %s %s\n" % (m.qos, 1 if m.retain else 0, m.topic,
                                   m.payload.decode("utf-8", "replace")))
        got[0] += 1
        if count and got[0] >= count:
            done.set()

    c = connect(host, port, user, pw, v5, cid)
    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.loop_start()
    done.wait(seconds)
    c.disconnect()
    c.loop_stop()
    f.close()
    return 0


def pub(argv):
    host, port, user, pw, topic, qos, n, prefix, acked = argv[:9]
    opts = argv[9:]
    retain = "--retain" in opts
    pace = float(opts[opts.index("--pace") + 1]) / 1000 if "--pace" in opts else 0
    qos, n = int(qos), int(n)
    c = connect(host, port, user, pw)
    c.reconnect_delay_set(0.1, 1)
    c.loop_start()
    f = open(acked, "a", buffering=1)
    deadline = time.time() + 60
    for i in range(n):
        info = c.publish(topic, "%s%d" % (prefix, i), qos=qos, retain=retain)
        if qos > 0:
            while not info.is_published():
                if time.time() > deadline:
                    print("message %d not acknowledged within 60 s" % i, file=sys.stderr)
                    return 1
                info.wait_for_publish(0.5)
        f.write("%d\n" % i)
        if pace:
            time.sleep(pace)
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    sys.exit(sub(sys.argv[2:]) if cmd == "sub" else pub(sys.argv[2:]))
