"""MQTT clients of the several-node tests (test_cluster*.sh), with paho-mqtt 1.6.

  revoke HOST PORT CA CERT KEY API_URL TOKEN DEVICE_ID
      connects as the device (mutual TLS), revokes it through the REST API of another node
      and prints "sent_ms answered_ms closed_ms" (from the request's start; closed -1 when the
      connection was not closed within 3 s)
  provision API_URL CA TOKEN PRODUCT_KEY N OUT
      N devices provisioned through the REST API (one connection): OUT gets "id secret" lines
  publishers HOST PORT CA CREDS SECONDS OUT [INTERVAL]
      one client per line of CREDS ("device_id secret"), TLS with id + secret, each publishes
      QoS 1 devices/<id>/telemetry payloads "<id> <n>" (n = 1, 2, ...) for SECONDS, one at a
      time, INTERVAL seconds apart, reconnecting whenever its connection drops; OUT gets, per
      device, the highest n whose PUBACK came ("<id> <n>")
  follow HOST PORT HOST2 PORT2 CA CERT KEY CLIENT_ID SECONDS OUT
      a device (mutual TLS, persistent session, subscribed to its commands at QoS 1) first on
      HOST:PORT; whenever its connection drops it reconnects to HOST2:PORT2 (every 0.2 s)
      until SECONDS pass. OUT gets "connected MS rc=RC present=P" and "closed MS" lines (MS
      since the start, flushed at once)
  backend HOST PORT CA CERT KEY CLIENT_ID SECONDS OUT [TOPIC [ACKED]]
      a persistent (clean session 0) subscriber at QoS 1: subscribes to TOPIC (a CONNECT
      refused or cut before that is retried for up to 30 s), then stays connected SECONDS
      (0: subscribe and disconnect); appends each message's payload to OUT.
      With ACKED (a publishers OUT file): leaves once OUT holds every message ACKED says was
      acknowledged and nothing more came for 1 s (SECONDS is then the most it waits)
"""
import os
import random
import socket
import ssl
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt


def now_ms():
    return time.monotonic() * 1000.0


def revoke(host, port, ca, cert, key, api, token, device):
    closed = threading.Event()
    connected = threading.Event()
    t = {}
    c = mqtt.Client(client_id="", clean_session=True)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    c.on_connect = lambda cl, u, f, rc: connected.set() if rc == 0 else None

    def gone(*_):
        t.setdefault("closed", now_ms())
        closed.set()

    c.on_disconnect = gone

    def loop():  # the server ends with a TLS alert (certificate revoked): an exception
        try:
            while not closed.is_set() and c.loop(0.01) == 0:
                pass
        except Exception:
            pass
        gone()

    c.connect(host, int(port), keepalive=60)
    th = threading.Thread(target=loop, daemon=True)
    th.start()
    if not connected.wait(10):
        print("-1 -1 -1")
        return 1
    time.sleep(0.3)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    req = urllib.request.Request(api + "/v1/devices/%s/revoke" % device, method="POST",
                                 data=b'{"reason":"keyCompromise"}',
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    start = now_ms()
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        r.read()
    answered = now_ms()
    closed.wait(3)
    print("0 %.1f %.1f" % (answered - start, t["closed"] - start if "closed" in t else -1))
    return 0


def provision(api, ca, token, product_key, n, out):
    """n devices through POST /v1/devices on one HTTPS connection: "id secret" lines."""
    import http.client
    import json
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    host, port = api.split("//")[1].split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
    with open(out, "w") as f:
        for i in range(int(n)):
            body = json.dumps({"product_key": product_key, "serial_number": "SN-P%d" % i})
            conn.request("POST", "/v1/devices", body, {"Authorization": "Bearer " + token,
                                                       "Content-Type": "application/json"})
            r = conn.getresponse()
            d = json.loads(r.read())
            if r.status != 201:
                print(r.status, d, file=sys.stderr)
                return 1
            f.write("%s %s\n" % (d["device_id"], d["device_secret"]))
    return 0


def publishers(host, port, ca, creds, seconds, out, interval="0.02"):
    ids = [l.split() for l in open(creds) if l.strip()]
    acked = {d: 0 for d, _ in ids}
    stop = time.monotonic() + float(seconds)
    lock = threading.Lock()

    def run(dev, secret):
        n = 0  # last acknowledged
        time.sleep(random.random() * 2)  # not 200 handshakes at once
        session = None
        while time.monotonic() < stop:
            c = mqtt.Client(client_id=dev, clean_session=True)
            c.username_pw_set(dev, secret)
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False
            c.tls_set_context(ctx)
            done = threading.Event()
            ok = threading.Event()
            c.on_connect = lambda cl, u, f, rc: (ok.set() if rc == 0 else None, done.set())
            c.on_disconnect = lambda cl, u, rc: done.set()
            try:
                c.connect(host, int(port), keepalive=30)
            except OSError:
                time.sleep(0.2)
                continue
            c.loop_start()
            done.wait(5)
            if not ok.is_set():
                c.loop_stop()
                time.sleep(0.2)
                continue
            done.clear()
            while time.monotonic() < stop and not done.is_set():
                info = c.publish("devices/%s/telemetry" % dev, "%s %d" % (dev, n + 1), qos=1)
                t_end = time.monotonic() + 5

                def is_acked():
                    try:
                        return info.is_published()
                    except RuntimeError:  # the connection went before it was sent
                        return False

                while not is_acked() and time.monotonic() < t_end and not done.is_set():
                    time.sleep(0.005)
                if not is_acked():
                    break  # not acknowledged: sent again after the reconnect
                n += 1
                with lock:
                    acked[dev] = n
                time.sleep(float(interval))
            c.disconnect()
            c.loop_stop()

    threads = [threading.Thread(target=run, args=(d, s), daemon=True) for d, s in ids]
    for th in threads:
        th.start()
    for th in threads:
        th.join(float(seconds) + 15)
    with open(out, "w") as f:
        for d, n in acked.items():
            f.write("%s %d\n" % (d, n))
    return 0


def backend(host, port, ca, cert, key, client_id, seconds, out, topic="devices/+/telemetry",
            acked_file=None):
    subscribed = threading.Event()
    gone = threading.Event()
    missing = {}  # device -> acknowledged numbers not received yet (with ACKED)
    if acked_file:
        for line in open(acked_file):
            p = line.split()
            if len(p) == 2:
                missing[p[0]] = set(range(1, int(p[1]) + 1))
        if os.path.exists(out):
            for line in open(out):
                p = line.split()
                if len(p) == 2 and p[0] in missing:
                    missing[p[0]].discard(int(p[1]) if p[1].isdigit() else 0)
    left = [sum(len(v) for v in missing.values())]
    last = [time.monotonic()]  # when the last message came
    f = open(out, "a")
    c = mqtt.Client(client_id=client_id, clean_session=False)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    c.tls_insecure_set(True)  # through HAProxy the name is not 127.0.0.1's
    # A CONNECT refused or cut before the subscription (a node may refuse logins while its
    # database is unreachable) is retried, as a real consumer does: paho reconnects by itself
    # (1 s, 2 s, ...) within the 30 s below. Leaving at once (as before) ended the run with
    # what the few messages before the leave brought, the rest left queued in the session.
    c.on_connect = lambda cl, u, fl, rc: (f.write("CONNACK %d present=%d\n" % (
        rc, fl.get("session present", 0))), f.flush(),
        cl.subscribe(topic, qos=1) if rc == 0 else None)
    c.on_subscribe = lambda cl, u, mid, q: subscribed.set()

    def got(cl, u, m):
        text = m.payload.decode()
        f.write(text + "\n")
        f.flush()
        p = text.split()
        if acked_file and len(p) == 2 and p[0] in missing and p[1].isdigit():
            n = int(p[1])
            if n in missing[p[0]]:
                missing[p[0]].discard(n)
                left[0] -= 1
        last[0] = time.monotonic()

    def lost(cl, u, rc):  # once subscribed, no automatic reconnect: the test decides
        if not gone.is_set():
            f.write("DISCONNECTED %d%s\n" % (rc, "" if subscribed.is_set() else
                                              " (before subscribing: retried)"))
            f.flush()
        if subscribed.is_set():
            gone.set()

    c.on_message = got
    c.on_disconnect = lost
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    if not subscribed.wait(30):  # a takeover under load (load 16) may take seconds
        f.write("NOT SUBSCRIBED\n")
        f.flush()
        c.loop_stop()
        return 1
    # With ACKED: once all came, and nothing more for 1 s (a redelivery, a message whose
    # PUBACK the publisher missed: drained here rather than in the next test's file).
    deadline = time.monotonic() + float(seconds)
    while not gone.is_set() and time.monotonic() < deadline:
        if acked_file and left[0] == 0 and time.monotonic() - last[0] >= 1.0:
            break
        gone.wait(0.1)
    gone.set()
    c.disconnect()
    c.loop_stop()
    f.close()
    return 0


def follow(host, port, host2, port2, ca, cert, key, client_id, seconds, out):
    f = open(out, "a")
    t0 = now_ms()
    stop = time.monotonic() + float(seconds)
    gone = threading.Event()

    def note(line):
        f.write(line + "\n")
        f.flush()

    def on_connect(cl, u, fl, rc):
        note("connected %.0f rc=%d present=%d" % (now_ms() - t0, rc, fl.get("session present", 0)))
        if rc == 0:
            cl.subscribe("devices/%s/commands/#" % client_id, qos=1)
        else:
            gone.set()

    def on_disconnect(cl, u, rc):
        gone.set()

    target = (host, int(port))
    while time.monotonic() < stop:
        c = mqtt.Client(client_id=client_id, clean_session=False)
        c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        c.tls_insecure_set(True)  # through HAProxy
        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        gone.clear()
        try:
            c.connect(target[0], target[1], keepalive=30)
        except OSError:
            time.sleep(0.2)
            target = (host2, int(port2))
            continue
        c.loop_start()
        while not gone.is_set() and time.monotonic() < stop:
            gone.wait(0.1)
        if gone.is_set():
            note("closed %.0f" % (now_ms() - t0))
        c.disconnect()
        c.loop_stop()
        target = (host2, int(port2))
        if time.monotonic() < stop:
            time.sleep(0.2)
    f.close()
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"revoke": revoke, "publishers": publishers, "backend": backend,
              "provision": provision, "follow": follow}[cmd](*args))
