#!/usr/bin/env python3
"""Fault-injection helper of test_faults_pg.sh and test_faults_kill.sh (Python standard
library only). Sub-commands:

  proxy PORT UNIX-SOCKET   a loopback TCP proxy to PostgreSQL's socket: SIGUSR1 cuts it
                           (every connection closed, new ones refused), SIGUSR2 restores it
  pg ENV.json              PostgreSQL lost under node A (proxy cut, then pg_ctl stop) while
                           devices are connected and activations are in flight
  burst ENV.json OUT.json  activations and revocations in parallel; SIGKILL of iothubd in
                           the middle; every 2xx answer is written to OUT.json
  verify ENV.json OUT.json every 2xx of the burst is in the database and the served CRL

Prints "ok - ..." / "not ok - ..." lines; exits 1 when a check failed. Every socket and
request has a timeout, so nothing here can hang."""

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import mqtt_raw
import tap
from mqtt_raw import CONNACK, PUBACK, PUBLISH
from tap import check

ENV = {}


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)

# ---- the proxy ------------------------------------------------------------------------------


def proxy(port, upstream):
    """Forwards 127.0.0.1:port to the Unix socket upstream until SIGTERM."""
    state = {"server": None, "conns": set()}

    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def client(reader, writer):
        try:
            ur, uw = await asyncio.open_unix_connection(upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, uw)
        state["conns"].add(pair)
        try:
            await asyncio.gather(pipe(reader, uw), pipe(ur, writer))
        finally:
            state["conns"].discard(pair)

    async def listen():
        state["server"] = await asyncio.start_server(client, "127.0.0.1", port, reuse_address=True)

    def cut():
        if state["server"] is not None:
            state["server"].close()
            state["server"] = None
        for a, b in list(state["conns"]):
            for w in (a, b):
                w.transport.abort()
        state["conns"].clear()
        print("cut", flush=True)

    def restore():
        async def go():
            if state["server"] is None:
                await listen()
            print("restored", flush=True)
        asyncio.ensure_future(go())

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, cut)
        loop.add_signal_handler(signal.SIGUSR2, restore)
        loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
        await listen()
        print("ready", flush=True)
        await stop

    asyncio.run(main())

# ---- MQTT over mutual TLS (the subset these tests need) --------------------------------------


class Mqtt(mqtt_raw.Conn):
    """One MQTT 3.1.1 session over TLS with a client certificate, connected on creation.
    Unlike mqtt_raw.Conn, packets read while waiting for another type are dropped (QoS 1
    deliveries acknowledged)."""

    def __init__(self, who, client_id, port=None):
        super().__init__("127.0.0.1", port or ENV["a"]["mqtt"],
                         mqtt_raw.tls_context(ENV["ca"], who["cert"], who["key"]))
        self.send(mqtt_raw.connect_pkt(client_id))
        p = self.expect(CONNACK)
        if p.body[1] != 0:
            raise AssertionError("CONNACK %d" % p.body[1])

    def expect(self, ptype, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()))
            if p is None:
                raise AssertionError("no packet of type %d within %.1f s" % (ptype, timeout))
            if p.type == ptype:
                return p
            if p.type == PUBLISH and p.qos:  # acknowledge QoS 1 deliveries we skip
                self.send(mqtt_raw.ack_pkt(PUBACK, p.pid))

    def subscribe(self, topic, qos=1):
        return super().subscribe(1, [(topic, qos)])

    def publish(self, topic, payload, pid=1):
        """QoS 1; True when the PUBACK came."""
        self.send(mqtt_raw.publish_pkt(topic, payload, qos=1, pid=pid))
        return self.expect(PUBACK).type == PUBACK

    def receive(self, timeout=5.0):
        """(topic, payload) of the next PUBLISH (acknowledged), None on timeout."""
        try:
            p = self.expect(PUBLISH, timeout)
        except AssertionError:
            return None
        if p.qos:
            self.send(mqtt_raw.ack_pkt(PUBACK, p.pid))
        return p.topic, p.payload.decode()


def refusal(who, port=None):
    """How this certificate is refused an MQTT session (mqtt_raw.refusal: the TLS alert's name,
    "closed", "CONNACK n"), None when it gets one."""
    return mqtt_raw.refusal("127.0.0.1", port or ENV["a"]["mqtt"],
                            mqtt_raw.tls_context(ENV["ca"], who["cert"], who["key"]))

# ---- REST ----------------------------------------------------------------------------------


def api(node, method, path, token=None, body=None, basic=None, timeout=15):
    """(status, parsed JSON or raw bytes, seconds); status 0 when no HTTP answer came."""
    ctx = ssl.create_default_context(cafile=ENV["ca"])
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if basic:
        import base64
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("https://127.0.0.1:%d%s" % (node["api"], path), method=method,
                                 data=data, headers=headers)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e), time.monotonic() - t0
    dt = time.monotonic() - t0
    try:
        return status, json.loads(raw), dt
    except ValueError:
        return status, raw, dt


def json_error(body):
    """The error code of a SPEC §4 error body, None if it is not one."""
    try:
        e = body["error"]
        return e["code"] if isinstance(e["code"], str) and e["message"] else None
    except (TypeError, KeyError):
        return None


def psql(query):
    out = subprocess.run(["psql", ENV["db_url"], "-X", "-q", "-A", "-t", "-F", "|",
                          "-v", "ON_ERROR_STOP=1", "-c", query],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("psql: " + out.stderr.strip())
    return [line.split("|") for line in out.stdout.splitlines() if line]


def crl_entries(node):
    """{serial: reason text} of the CRL node serves (openssl's view)."""
    status, body, _ = api(node, "GET", "/v1/crl")
    if status != 200 or not isinstance(body, bytes):
        raise AssertionError("GET /v1/crl -> %s" % status)
    out = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=body,
                         capture_output=True, timeout=60)
    entries, cur = {}, None
    lines = out.stdout.decode().splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if line.startswith("Serial Number:"):
            cur = line.split(":", 1)[1].strip()
            entries[cur] = "none"
        elif line == "X509v3 CRL Reason Code:" and cur is not None and i + 1 < len(lines):
            entries[cur] = lines[i + 1].strip()
    return entries


REASON_TEXT = {"keyCompromise": "Key Compromise", "superseded": "Superseded",
               "cessationOfOperation": "Cessation Of Operation",
               "affiliationChanged": "Affiliation Changed", "unspecified": "Unspecified",
               "privilegeWithdrawn": "Privilege Withdrawn"}

# ---- activations in flight ------------------------------------------------------------------


class Activations:
    """Threads that activate their device again and again on node A, recording every answer
    as (time, status, error code, serial, certificate PEM, superseded)."""

    def __init__(self, devices, node):
        self.devices, self.node = devices, node
        self.stop = threading.Event()
        self.answers = {d["id"]: [] for d in devices}
        self.threads = [threading.Thread(target=self.run, args=(d,), daemon=True)
                        for d in devices]

    def run(self, d):
        csr = open(d["csr"]).read()
        while not self.stop.is_set():
            t = time.monotonic()
            status, body, dt = api(self.node, "POST", "/v1/devices/%s/activate" % d["id"],
                                   basic="%s:%s" % (d["id"], d["secret"]), body={"csr": csr})
            ok = status == 201 and isinstance(body, dict)
            self.answers[d["id"]].append({
                "t": t, "dt": dt, "status": status, "code": json_error(body),
                "serial": body.get("serial") if ok else None,
                "certificate": body.get("certificate") if ok else None,
                "superseded": body.get("superseded") if ok else None,
                "body": None if ok or json_error(body) else str(body)[:300]})
            self.stop.wait(0.15)

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(30)

    def all(self):
        return [a for lst in self.answers.values() for a in lst]


def serial_of(pem):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                         capture_output=True, timeout=30)
    return out.stdout.decode().strip().split("=", 1)[-1]


def check_activations(label, acts):
    """Every answer is 201 or 503 database_unavailable; every certificate handed out is in
    the database with its device; each device's valid certificate (at most one) is known."""
    answers = acts.all()
    n201 = sum(1 for a in answers if a["status"] == 201)
    n503 = sum(1 for a in answers if a["status"] == 503)
    bad = [a for a in answers if not (a["status"] == 201 or
                                      (a["status"] == 503 and a["code"] == "database_unavailable"))]
    check(not bad and n201 > 0 and n503 > 0,
          "%s: %d activations in flight answered 201 or 503 database_unavailable only "
          "(%d x 201, %d x 503)" % (label, len(answers), n201, n503),
          [(b["status"], b["code"], b["body"]) for b in bad[:5]])
    slow = [a["dt"] for a in answers if a["status"] == 503 and a["dt"] >= 6]
    check(not slow, "%s: every activation refused with 503 was answered within 6 s (slowest "
          "%.2f s)" % (label, max([a["dt"] for a in answers if a["status"] == 503] or [0])), slow)
    rows = psql("SELECT serial, device_id, status, coalesce(revocation_reason, -1)"
                " FROM certificates WHERE kind = 'device'")
    db = {r[0]: r for r in rows}
    missing, mismatch = [], []
    for dev, lst in acts.answers.items():
        for a in lst:
            if a["status"] != 201:
                continue
            if a["serial"] not in db:
                missing.append(a["serial"])
            elif db[a["serial"]][1] != dev or serial_of(a["certificate"]).upper() != a["serial"]:
                mismatch.append(a["serial"])
    check(not missing and not mismatch,
          "%s: each of the %d certificates handed out (201) is in the certificates table with "
          "its device" % (label, n201), (missing, mismatch))
    unknown = 0
    problems = []
    for dev, lst in acts.answers.items():
        handed = {a["serial"] for a in lst if a["status"] == 201}
        valid = [r[0] for r in rows if r[1] == dev and r[2] == "valid"]
        unknown += len([r for r in rows if r[1] == dev and r[0] not in handed])
        last = [a for a in lst if a["status"] == 201]
        if len(valid) > 1:
            problems.append((dev, "valid", valid))
        # The device's valid certificate is the last one handed out, unless a later
        # activation committed while its answer was lost (the database knows that one too).
        if last and valid and valid[0] != last[-1]["serial"] and valid[0] in handed:
            problems.append((dev, "not the last one handed out", valid, last[-1]["serial"]))
    check(not problems, "%s: each device holds at most one valid certificate, the last one it "
          "was given (%d certificates were issued but never handed out; the database lists "
          "them)" % (label, unknown), problems)


def check_crl_matches_db(label, node):
    """Every unexpired revoked certificate is in node's CRL with its reason, and no valid one."""
    def mismatches():
        rows = psql("SELECT serial, status, coalesce(crl_reason_name(revocation_reason), 'none')"
                    " FROM certificates WHERE not_after > now()")
        crl = crl_entries(node)
        wrong = []
        for serial, status, reason in rows:
            if status == "revoked":
                want = REASON_TEXT.get(reason, reason)
                if crl.get(serial) != want and not (reason == "unspecified" and crl.get(serial)):
                    wrong.append((serial, "revoked", reason, crl.get(serial)))
            elif serial in crl:
                wrong.append((serial, "valid but listed"))
        return rows, wrong
    # A revocation just committed (a re-activation supersedes) is published within a second
    # (SPEC §5): poll a few seconds rather than read the CRL once.
    deadline = time.time() + 5
    rows, wrong = mismatches()
    while wrong and time.time() < deadline:
        time.sleep(0.2)
        rows, wrong = mismatches()
    check(not wrong, "%s: the CRL served lists exactly the %d revoked certificates of the "
          "database, each with its reason" % (label, sum(r[1] == "revoked" for r in rows)), wrong)


def wait_for(fn, timeout, step=0.1):
    """Polls fn until it returns a true value; (value, seconds) or (None, timeout)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None, time.monotonic() - t0
        time.sleep(step)

# ---- scenario: PostgreSQL lost under node A ---------------------------------------------------


def mqtt_flows(label, dev, svc):
    """dev publishes telemetry the service receives; the service sends a command dev gets."""
    tag = "%s-%f" % (label, time.monotonic())
    dev.publish("devices/%s/telemetry" % ENV["devices"]["d1"]["id"], tag)
    got = svc.receive(5)
    up = got is not None and got[1] == tag
    svc.publish("devices/%s/commands/ping" % ENV["devices"]["d1"]["id"], "cmd-" + tag)
    got2 = dev.receive(5)
    down = got2 is not None and got2[1] == "cmd-" + tag
    check(up and down, "%s: a connected device publishes and the service receives it; the "
          "service's command reaches the device" % label, (got, got2))


def rest_refused(label, node, limit=6.0):
    """Reads, writes and activation on node answer 503 with a JSON error within limit s."""
    d = ENV["devices"]
    calls = [
        ("GET /v1/devices", "GET", "/v1/devices", ENV["operator"], None, None),
        ("GET /v1/devices/{id}", "GET", "/v1/devices/" + d["d1"]["id"], ENV["operator"], None,
         None),
        ("GET /v1/certificates", "GET", "/v1/certificates", ENV["operator"], None, None),
        ("POST /v1/products", "POST", "/v1/products", ENV["admin"], {"name": label}, None),
        ("POST /v1/devices/{id}/revoke", "POST", "/v1/devices/%s/revoke" % d["d1"]["id"],
         ENV["operator"], {"reason": "keyCompromise"}, None),
        ("POST /v1/devices/{id}/activate", "POST", "/v1/devices/%s/activate" % d["spare"]["id"],
         None, {"csr": open(d["spare"]["csr"]).read()},
         "%s:%s" % (d["spare"]["id"], d["spare"]["secret"])),
    ]
    for name, method, path, token, body, basic in calls:
        status, resp, dt = api(node, method, path, token, body, basic)
        check(status == 503 and json_error(resp) is not None and dt < limit,
              "%s: %s -> 503 {\"error\": {\"code\": \"%s\"}} in %.2f s" %
              (label, name, json_error(resp), dt), (status, resp))
    status, resp, dt = api(node, "GET", "/healthz")
    check(status == 503 and isinstance(resp, dict) and resp.get("database") == "down" and
          dt < limit, "%s: GET /healthz -> 503 {database: down} in %.2f s" % (label, dt),
          (status, resp))


def recovered(label, node, since):
    """REST answers 2xx again; returns the seconds it took after `since`."""
    v, _ = wait_for(lambda: api(node, "GET", "/healthz")[0] == 200, 15, 0.2)
    dt = time.monotonic() - since
    check(v, "%s: GET /healthz -> 200 again %.2f s after PostgreSQL came back, without "
          "restarting iothubd" % (label, dt))
    s1 = api(node, "GET", "/v1/devices", ENV["operator"])[0]
    s2 = api(node, "POST", "/v1/products", ENV["admin"], {"name": label + " after"})[0]
    check(s1 == 200 and s2 == 201, "%s: GET /v1/devices -> 200 and POST /v1/products -> 201 "
          "again" % label, (s1, s2))
    return dt


def last_seen(dev_id):
    v = psql("SELECT coalesce(rfc3339(last_seen), '-') FROM devices WHERE id = '%s'"
             % dev_id)[0][0]
    return v if v != "-" else None


def outage(label, cut, restore, victim, during_revoke, acts_devices, presence_dev, hold):
    """One outage of hold seconds (long enough for the revocation feed's back-off to reach
    its cap) between cut() and restore()."""
    d = ENV["devices"]
    a = ENV["a"]
    svc = ENV["svc_conn"]
    dev = ENV["d1_conn"]
    v = Mqtt(d[victim], "victim-" + label)
    acts = Activations(acts_devices, a).start()
    time.sleep(2.0)
    t_cut = time.monotonic()
    cut()
    time.sleep(0.5)
    log("%s: cut" % label)
    mqtt_flows(label + ", database unreachable", dev, svc)
    rest_refused(label + ", database unreachable", a)
    pres = Mqtt(d[presence_dev], "presence-" + label)
    revoke_at = None
    if during_revoke:
        # Node B still reaches PostgreSQL: it revokes the victim's certificate now; node A's
        # LISTEN connection is cut, so A never gets this NOTIFY.
        status, body, _ = api(ENV["b"], "POST", "/v1/certificates/%s/revoke" % d[victim]["serial"],
                              ENV["operator"], {"reason": "keyCompromise"})
        check(status == 200, "%s: node B revokes the certificate of a device connected to node A "
              "-> 200" % label, (status, body))
        time.sleep(1.0)
        check(not v.closed_within(0.1), "%s: node A cannot know yet: the session is still open"
              % label)
    time.sleep(max(1.0, t_cut + hold - time.monotonic()))
    restore()
    t_up = time.monotonic()
    log("%s: restored after %.1f s" % (label, t_up - t_cut))
    if not during_revoke:
        # Right after the restart, while node A may still be reconnecting: its NOTIFY can
        # be lost too.
        def revoke():
            status = api(ENV["b"], "POST", "/v1/certificates/%s/revoke" % d[victim]["serial"],
                         ENV["operator"], {"reason": "keyCompromise"})[0]
            # 409: an earlier attempt committed but its answer was lost.
            return status == 200 or (status == 409 and psql(
                "SELECT status FROM certificates WHERE serial = '%s'" %
                d[victim]["serial"])[0][0] == "revoked")
        r, _ = wait_for(revoke, 10, 0.2)
        check(r, "%s: node B revokes the certificate of a device connected to node A -> 200"
              % label)
    revoke_at = time.monotonic()
    closed = v.closed_within(20)
    dt = time.monotonic() - (t_up if during_revoke else revoke_at)
    check(closed and dt < 10, "%s: node A closes the revoked device's session %.2f s after %s "
          "(bound 10 s)" % (label, dt, "the database came back" if during_revoke else
                            "the revocation"))
    v.close()
    why = refusal(d[victim])
    check(why == "SSLV3_ALERT_CERTIFICATE_REVOKED", "%s: node A refuses the revoked "
          "certificate's new handshake (alert certificate revoked)" % label, why)
    recovered(label, a, t_up)
    # The service's login reads PostgreSQL on node A's lookup connection, which the outage
    # closed while idle: found closed and reset, not trusted with this first login (it was
    # refused: the connection closed without a CONNACK).
    try:
        Mqtt(ENV["service"], "probe-" + ("cut" if during_revoke else "restart")).close()
        why = None
    except Exception as e:  # mqtt_raw.Closed: closed without a CONNACK
        why = repr(e)
    check(why is None, "%s: node A accepts a service's MQTT login at the first try after "
          "recovery" % label, why)
    time.sleep(1.5)
    acts.finish()
    check_activations(label, acts)
    ls, dt = wait_for(lambda: last_seen(d[presence_dev]["id"]), 5, 0.2)
    check(ls, "%s: a device that connected while the database was unreachable has its "
          "last_seen written after recovery (%.1f s)" % (label, dt))
    pres.close()
    mqtt_flows(label + ", after recovery", dev, svc)
    status, body, _ = api(a, "POST", "/v1/devices/%s/activate" % d["spare"]["id"],
                          basic="%s:%s" % (d["spare"]["id"], d["spare"]["secret"]),
                          body={"csr": open(d["spare"]["csr"]).read()})
    check(status == 201 and psql("SELECT device_id FROM certificates WHERE serial = '%s'" %
                                 body.get("serial"))[0][0] == d["spare"]["id"],
          "%s: activation on node A -> 201 again, its certificate recorded" % label,
          (status, body))
    check_crl_matches_db(label, a)


def scenario_pg():
    d = ENV["devices"]
    a = ENV["a"]
    proxy_pid = ENV["proxy_pid"]
    ENV["svc_conn"] = svc = Mqtt(ENV["service"], "backend-1")
    svc.subscribe("devices/+/telemetry")
    ENV["d1_conn"] = dev = Mqtt(d["d1"], "d1")
    dev.subscribe("devices/%s/commands/#" % d["d1"]["id"])
    mqtt_flows("before any outage", dev, svc)
    workers = [d[k] for k in sorted(d) if k.startswith("w")]

    outage("proxy cut (node A only)",
           lambda: os.kill(proxy_pid, signal.SIGUSR1),
           lambda: os.kill(proxy_pid, signal.SIGUSR2),
           "v1", True, workers[:3], "p1", 12)

    pgctl = ENV["pg_ctl"]
    outage("pg_ctl stop/start",
           lambda: check(subprocess.run(pgctl["stop"], capture_output=True, timeout=60)
                         .returncode == 0, "pg_ctl -m fast stop"),
           lambda: check(subprocess.run(pgctl["start"], capture_output=True, timeout=90)
                         .returncode == 0, "pg_ctl start"),
           "v2", False, workers[3:], "p2", 4)
    p3 = Mqtt(d["p3"], "p3")
    ls, dt = wait_for(lambda: last_seen(d["p3"]["id"]), 5, 0.2)
    check(ls, "presence writes resume: a device connecting after both outages gets last_seen "
          "within %.1f s" % dt)
    p3.close()
    svc.close()
    dev.close()

# ---- scenario: kill -9 during a burst -------------------------------------------------------


def prepare_burst():
    """Provisions the burst's devices through the API: activators (provisioned) and
    revocation targets (activated), all with one CSR (one key pair is enough here)."""
    a, csr = ENV["a"], open(ENV["csr"]).read()
    lock = threading.Lock()
    devs = []

    def make(i):
        status, body, _ = api(a, "POST", "/v1/devices", ENV["admin"],
                              {"product_key": ENV["product_key"], "serial_number": "K-%d" % i})
        if status != 201:
            return
        d = {"id": body["device_id"], "secret": body["device_secret"], "csr": ENV["csr"], "i": i}
        if i >= ENV["activators"]:
            status, body, _ = api(a, "POST", "/v1/devices/%s/activate" % d["id"],
                                  basic="%s:%s" % (d["id"], d["secret"]), body={"csr": csr})
            if status != 201:
                return
            d["serial"] = body["serial"]
        with lock:
            devs.append(d)

    n = ENV["activators"] + ENV["targets"]
    for start in range(0, n, 4):
        ths = [threading.Thread(target=make, args=(i,)) for i in range(start, min(n, start + 4))]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
    devs.sort(key=lambda d: d["i"])
    ENV["burst_devices"] = [d for d in devs if "serial" not in d]
    ENV["revoke"] = [{"device": d["id"], "serial": d["serial"], "by_device": d["i"] % 2 == 1}
                     for d in devs if "serial" in d]
    return len(devs) == n


def burst(out_path):
    a = ENV["a"]
    check(prepare_burst(), "%d devices provisioned for the burst, %d of them activated" %
          (ENV["activators"] + ENV["targets"], ENV["targets"]))
    results = {"activations": [], "revocations": []}
    lock = threading.Lock()
    stop = threading.Event()
    reasons = ["keyCompromise", "cessationOfOperation", "affiliationChanged", "superseded",
               "privilegeWithdrawn", None]

    def activator(d):
        csr = open(d["csr"]).read()
        while not stop.is_set():
            status, body, _ = api(a, "POST", "/v1/devices/%s/activate" % d["id"],
                                  basic="%s:%s" % (d["id"], d["secret"]), body={"csr": csr},
                                  timeout=10)
            if status == 0:
                return
            if status == 201:
                with lock:
                    results["activations"].append({"device": d["id"], "serial": body["serial"],
                                                   "certificate": body["certificate"]})

    def revoker(i, targets):
        for j, t in enumerate(targets):
            if stop.is_set():
                return
            reason = reasons[(i + j) % len(reasons)]
            body = {"reason": reason} if reason else None
            if t.get("by_device"):
                status, resp, _ = api(a, "POST", "/v1/devices/%s/revoke" % t["device"],
                                      ENV["operator"], body, timeout=10)
            else:
                status, resp, _ = api(a, "POST", "/v1/certificates/%s/revoke" % t["serial"],
                                      ENV["operator"], body, timeout=10)
            if status == 0:
                return
            if status == 200:
                with lock:
                    results["revocations"].append({"serial": t["serial"],
                                                   "reason": reason or "unspecified",
                                                   "device": t["device"],
                                                   "by_device": bool(t.get("by_device"))})

    targets = ENV["revoke"]
    k = 3
    threads = [threading.Thread(target=activator, args=(d,), daemon=True)
               for d in ENV["burst_devices"]]
    threads += [threading.Thread(target=revoker, args=(i, targets[i::k]), daemon=True)
                for i in range(k)]
    for th in threads:
        th.start()
    time.sleep(ENV.get("kill_after", 2.5))
    os.kill(ENV["server_pid"], signal.SIGKILL)
    killed = time.monotonic()
    stop.set()
    for th in threads:
        th.join(20)
    log("killed after %d activations and %d revocations answered 2xx" %
        (len(results["activations"]), len(results["revocations"])))
    results["burst_devices"] = ENV["burst_devices"]
    json.dump(results, open(out_path, "w"))
    check(len(results["activations"]) > 0 and len(results["revocations"]) > 0,
          "a burst of activations and revocations, then kill -9 of iothubd mid-burst "
          "(%d activations and %d revocations answered 2xx before the kill)" %
          (len(results["activations"]), len(results["revocations"])))
    check(time.monotonic() - killed < 20, "every request in flight ended after the kill")


def verify(out_path):
    results = json.load(open(out_path))
    rows = psql("SELECT serial, coalesce(device_id::text, ''), status,"
                " coalesce(crl_reason_name(revocation_reason), '') FROM certificates")
    db = {r[0]: r for r in rows}
    bad = [x["serial"] for x in results["activations"]
           if x["serial"] not in db or db[x["serial"]][1] != x["device"] or
           serial_of(x["certificate"]).upper() != x["serial"]]
    check(not bad, "after the restart each of the %d certificates handed out (201) is in the "
          "database with its device" % len(results["activations"]), bad)
    bad = [x for x in results["revocations"]
           if x["serial"] not in db or db[x["serial"]][2] != "revoked" or
           db[x["serial"]][3] != x["reason"]]
    check(not bad, "after the restart each of the %d revocations answered 200 is in the "
          "database with its reason" % len(results["revocations"]), bad)
    crl = crl_entries(ENV["a"])
    bad = [(x["serial"], x["reason"], crl.get(x["serial"])) for x in results["revocations"]
           if crl.get(x["serial"]) != REASON_TEXT[x["reason"]] and
           not (x["reason"] == "unspecified" and x["serial"] in crl)]
    check(not bad, "the CRL served after the restart lists each of them with its reason", bad)
    check_crl_matches_db("after the restart", ENV["a"])
    valid = psql("SELECT device_id, count(*) FROM certificates WHERE status = 'valid' AND"
                 " kind = 'device' GROUP BY device_id HAVING count(*) > 1")
    check(not valid, "no device holds two valid certificates", valid)
    inconsistent = psql("SELECT d.id, d.status FROM devices d WHERE d.status <> 'active' AND"
                        " EXISTS (SELECT 1 FROM certificates c WHERE c.device_id = d.id AND"
                        " c.status = 'valid')")
    check(not inconsistent, "every device holding a valid certificate is active (no revoked "
          "device kept a valid one)", inconsistent)


def main():
    global ENV
    cmd = sys.argv[1]
    if cmd == "proxy":
        proxy(int(sys.argv[2]), sys.argv[3])
        return 0
    ENV = json.load(open(sys.argv[2]))
    try:
        if cmd == "pg":
            scenario_pg()
        elif cmd == "burst":
            burst(sys.argv[3])
        elif cmd == "verify":
            verify(sys.argv[3])
        elif cmd == "connect":
            # connect ENV.json DEVICE-ID CERT KEY NAME: an MQTT session with this
            # certificate connects and publishes at QoS 1.
            m = Mqtt({"cert": sys.argv[4], "key": sys.argv[5]}, "probe")
            check(m.publish("devices/%s/telemetry" % sys.argv[3], "hello"), sys.argv[6])
            m.close()
        elif cmd == "refused":
            # refused ENV.json OUT.json NAME: every certificate revoked in the burst (read
            # from the database into revoked-SERIAL.pem) is refused at the handshake.
            results = json.load(open(sys.argv[3]))
            bad = []
            for x in results["revocations"]:
                path = os.path.join(os.path.dirname(sys.argv[3]), "revoked-%s.pem" % x["serial"])
                b64 = psql("SELECT translate(encode(der, 'base64'), E'\\n', '') FROM"
                           " certificates WHERE serial = '%s'" % x["serial"])[0][0]
                with open(path, "w") as f:
                    f.write("-----BEGIN CERTIFICATE-----\n" +
                            "".join(b64[i:i + 64] + "\n" for i in range(0, len(b64), 64)) +
                            "-----END CERTIFICATE-----\n")
                why = refusal({"cert": path, "key": ENV["key"]})
                if why != "SSLV3_ALERT_CERTIFICATE_REVOKED":
                    bad.append((x["serial"], why))
            check(results["revocations"] and not bad, sys.argv[4], bad)
    except Exception as e:  # noqa: BLE001 - a crash of the scenario is one failure
        import traceback
        traceback.print_exc(file=sys.stderr)
        check(False, "%s completed without error (%s: %s)" % (cmd, type(e).__name__, e))
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
