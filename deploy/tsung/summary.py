#!/usr/bin/env python3
"""Summaries of tsung runs for deploy/tsung/run.sh.
  summary.py DIR T0 T1 RC      -> one JSON object from DIR/log/*/tsung.log (+ received.txt)
  summary.py --table SCENARIO USERS HUB.json MOSQ.json   -> a markdown table
tsung.log holds a dump every 10 s: counters as "stats: NAME INTERVAL TOTAL", samples (ms) as
"stats: NAME COUNT MEAN STDDEV MAX MIN ..." for that interval; samples are summed here."""
import glob
import json
import os
import sys

SAMPLES = ("connect", "request", "page", "session")


def parse(d, t0, t1, rc):
    logs = sorted(glob.glob(os.path.join(d, "log", "*", "tsung.log")))
    counters, samples = {}, {}
    for line in open(logs[-1]) if logs else []:
        f = line.split()
        if len(f) < 3 or f[0] != "stats:" or f[1].startswith("{"):
            continue
        name = f[1]
        if name in SAMPLES and len(f) >= 7:
            n, mean, mx = int(f[2]), float(f[3]), float(f[5])
            s = samples.setdefault(name, {"n": 0, "sum": 0.0, "max": 0.0})
            s["n"] += n
            s["sum"] += n * mean
            s["max"] = max(s["max"], mx) if n else s["max"]
        elif len(f) == 4:
            counters[name] = int(float(f[3]))
    out = {"rc": int(rc), "wall_s": round(float(t1) - float(t0), 1), "log": logs[-1] if logs else None}
    for k, s in samples.items():
        out[k] = {"count": s["n"], "mean_ms": round(s["sum"] / s["n"], 2) if s["n"] else None,
                  "max_ms": round(s["max"], 2)}
    for k in ("users_count", "finish_users_count", "mqtt_connected", "mqtt_disconnected",
              "mqtt_server_pushed", "request_noack", "size_sent", "size_rcv"):
        if k in counters:
            out[k] = counters[k]
    out["errors"] = {k: v for k, v in counters.items() if k.startswith("error")}
    rec = os.path.join(d, "received.txt")
    if os.path.exists(rec):
        out["subscriber_received"] = sum(1 for _ in open(rec))
    return out


def table(scen, users, hub, mosq):
    h, m = json.load(open(hub)), json.load(open(mosq))

    def g(d, *p):
        for k in p:
            d = d.get(k) if isinstance(d, dict) else None
        return d

    rows = [("devices (users) started / finished", "users_count", None),
            ("MQTT sessions connected", "mqtt_connected", None),
            ("TCP + TLS connect mean / max ms", "connect", None),
            ("request (CONNECT->CONNACK, PUBLISH) mean / max ms", "request", None),
            ("session duration mean / max ms", "session", None),
            ("requests without an answer (QoS 0 PUBLISH, DISCONNECT)", "request_noack", None),
            ("messages received by the service subscriber", "subscriber_received", None),
            ("errors", "errors", None),
            ("tsung wall time s", "wall_s", None)]
    print("### tsung %s, %s devices" % (scen, users))
    print()
    print("| metric | iothub | Mosquitto |")
    print("|---|---|---|")
    for label, key, _ in rows:
        cells = []
        for d in (h, m):
            v = d.get(key)
            if key == "users_count":
                v = "%s / %s" % (d.get("users_count", 0), d.get("finish_users_count", 0))
            elif key in ("connect", "request", "session"):
                v = "n/a" if not v else "%s / %s (%s)" % (v["mean_ms"], v["max_ms"], v["count"])
            elif key == "errors":
                v = ", ".join("%s %d" % kv for kv in sorted(v.items())) or "0"
            elif v is None:
                v = "n/a"
            cells.append(str(v))
        if key == "subscriber_received" and cells == ["n/a", "n/a"]:
            continue
        print("| %s | %s | %s |" % (label, cells[0], cells[1]))
    print()
    print("tsung logs: %s, %s" % (g(h, "log"), g(m, "log")))


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(*sys.argv[2:6])
    else:
        print(json.dumps(parse(*sys.argv[1:5])))
