#!/usr/bin/env python3
"""The load of ./deploy/dev.sh soak (tests/bench/soak.sh): normal devices and a backend,
and one attacker holding one stolen device certificate (and its device id), for a given time.

    soak_clients.py ENV.json

ENV.json: {"ca", "mqtt_port", "api_port", "seconds", "out",
           "devices": [{"id", "cert", "key"}, ...], "service": {"cert", "key"},
           "attacker": {"id", "cert", "key"}}
Normal: each device publishes QoS 1 64-byte telemetry every 200 ms; the backend (the
service) is subscribed to devices/+/telemetry at QoS 1 and acknowledges what it gets.
Abuse, all at once, each at a bounded rate (the machine is shared):
  retained    8 KB retained QoS 1 messages on ever new topics under the attacker's subtree
              (50 a second)
  subscribe   SUBSCRIBEs of 20 distinct ~200-byte filters each (200 filters a second)
  publish     bursts of 100 QoS 0 publishes of 1 KB to its own topic (1,000 a second)
  guess       wrong device secrets on POST /v1/devices/{id}/activate (REST, HTTP Basic,
              about 20 a second)
  smuggle     Content-Length + Transfer-Encoding requests hiding a second request (2 a second)
A connection the server closes is opened again after 0.5 s (and counted). At the end,
writes the counters to "out" as JSON."""
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from mqtt_raw import (PUBLISH, SUBACK, Closed, Conn, ack_pkt, PUBACK,  # noqa: E402
                      publish_pkt, subscribe_pkt, tls_context)

env = json.load(open(sys.argv[1]))
END = time.monotonic() + float(env["seconds"])
lock = threading.Lock()
stats = {"normal_acked": 0, "normal_errors": 0, "backend_received": 0, "backend_errors": 0,
         "retained_sent": 0, "subscribe_sent": 0, "sub_granted": 0, "sub_refused": 0,
         "flood_sent": 0, "attacker_closed": 0, "guess_sent": 0, "guess_status": {},
         "smuggle_sent": 0, "smuggle_status": {}}


def count(key, n=1):
    with lock:
        stats[key] += n


def count_status(key, status):
    with lock:
        d = stats[key]
        d[str(status)] = d.get(str(status), 0) + 1


def running():
    return time.monotonic() < END


def mqtt(who, client_id):
    c = Conn("127.0.0.1", int(env["mqtt_port"]), tls_context(env["ca"], who["cert"], who["key"]))
    rc = c.connect(client_id)[1]
    if rc != 0:
        c.close()
        raise Closed()
    return c


def normal(dev):
    conn, pid = None, 0
    while running():
        try:
            if conn is None:
                conn = mqtt(dev, dev["id"])
            pid = pid % 65535 + 1
            conn.publish("devices/%s/telemetry" % dev["id"], b"t" * 64, qos=1, pid=pid)
            count("normal_acked")
        except (Closed, OSError, AssertionError):
            count("normal_errors")
            conn = None
            time.sleep(0.5)
        time.sleep(0.2)


def backend():
    conn = None
    while running():
        try:
            if conn is None:
                conn = mqtt(env["service"], "soak-backend")
                conn.subscribe(1, [("devices/+/telemetry", 1)])
            p = conn.read(0.5)
            if p is not None and p.type == PUBLISH:
                count("backend_received")
                if p.qos == 1:
                    conn.send(ack_pkt(PUBACK, p.pid))
        except (Closed, OSError, AssertionError):
            count("backend_errors")
            conn = None
            time.sleep(0.5)


def attacker():
    """The stolen certificate's one MQTT connection (a second one would take its session
    over), every 20 ms: a retained message, every 5th round a SUBSCRIBE, every 5th round a
    burst of publishes."""
    att = env["attacker"]
    base = "devices/%s" % att["id"]
    conn, n, pid, rnd = None, 0, 0, 0
    while running():
        try:
            if conn is None:
                conn = mqtt(att, att["id"])
            rnd += 1
            pid = pid % 65535 + 1
            conn.send(publish_pkt("%s/r/%d" % (base, rnd), os.urandom(8192), 1, True, pid))
            count("retained_sent")
            if rnd % 5 == 0:
                pid = pid % 65535 + 1
                filters = [("%s/s/%d/%s" % (base, n + i, "f" * 180), 0) for i in range(20)]
                n += 20
                conn.send(subscribe_pkt(pid, filters))
                count("subscribe_sent", 20)
                p = conn.expect(SUBACK, 5.0)
                granted = sum(1 for c in p.body[2:] if c != 0x80)
                count("sub_granted", granted)
                count("sub_refused", len(p.body) - 2 - granted)
            if rnd % 5 == 2:
                conn.send(b"".join(publish_pkt("%s/flood" % base, b"x" * 1024) for _ in range(100)))
                count("flood_sent", 100)
            # drop what the server sent (PUBACKs, retained copies) without waiting
            while conn.read(0.0) is not None:
                pass
            time.sleep(0.02)
        except (Closed, OSError, AssertionError, ValueError):
            count("attacker_closed")
            try:
                if conn is not None:
                    conn.close()
            except OSError:
                pass
            conn = None
            time.sleep(0.5)


def tls_api():
    ctx = ssl.create_default_context(cafile=env["ca"])
    ctx.check_hostname = False
    return ctx


def guess():
    """Wrong device secrets for the attacker's own device id, one connection each."""
    ctx, i = tls_api(), 0
    body = json.dumps({"csr": "-----BEGIN CERTIFICATE REQUEST-----\n"}).encode()
    while running():
        i += 1
        cred = base64.b64encode(("%s:wrong-secret-%d" % (env["attacker"]["id"], i)).encode()).decode()
        try:
            c = http.client.HTTPSConnection("127.0.0.1", int(env["api_port"]), context=ctx, timeout=10)
            c.request("POST", "/v1/devices/%s/activate" % env["attacker"]["id"], body,
                      {"Authorization": "Basic " + cred, "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            count_status("guess_status", r.status)
            c.close()
        except (OSError, http.client.HTTPException):
            count_status("guess_status", "error")
        count("guess_sent")
        time.sleep(0.05)


def smuggle():
    """A Content-Length + Transfer-Encoding request hiding a second one, every 0.5 s."""
    ctx = tls_api()
    hidden = "GET /v1/devices HTTP/1.1\r\nHost: localhost\r\n\r\n"
    req = ("POST /v1/products HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
           % (5 + len(hidden), hidden)).encode()
    while running():
        status = "error"
        try:
            raw = socket.create_connection(("127.0.0.1", int(env["api_port"])), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            answers = data.count(b"HTTP/1.1 ")
            status = data[9:12].decode() if answers == 1 else "answers:%d" % answers
        except (OSError, ssl.SSLError):
            pass
        count_status("smuggle_status", status)
        count("smuggle_sent")
        time.sleep(0.5)


threads = [threading.Thread(target=normal, args=(d,)) for d in env["devices"]]
threads.append(threading.Thread(target=backend))
threads += [threading.Thread(target=t) for t in (attacker, guess, smuggle)]
for t in threads:
    t.daemon = True
    t.start()
for t in threads:
    t.join(max(0.0, END - time.monotonic()) + 15)
with lock:
    json.dump(stats, open(env["out"], "w"))
