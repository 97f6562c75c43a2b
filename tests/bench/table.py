#!/usr/bin/env python3
"""Prints the markdown table of tests/bench/compare.sh from the JSON results in $OUT
(hub-*.json for iothubd, mosq-*.json for Mosquitto), the machine and the command."""
import json
import os
import platform
import subprocess

E = os.environ
OUT = E["OUT"]


def load(name):
    try:
        with open(os.path.join(OUT, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def ratio(h, m):
    if not isinstance(h, (int, float)) or not isinstance(m, (int, float)) or m == 0:
        return ""
    return "{:.2f}".format(h / m)


rows = []


def row(metric, h, m, digits=0, hs=None, ms=None):
    """hs / ms: text shown instead of the number (the ratio still uses the numbers)."""
    rows.append((metric, hs if hs is not None else fmt(h, digits),
                 ms if ms is not None else fmt(m, digits), ratio(h, m)))


def pair(d, key):
    lat = d.get(key) or {}
    if "p50" not in lat:
        return "n/a", None
    return "{:.2f} / {:.2f}".format(lat["p50"], lat["p99"]), lat["p99"]


def both(name):
    return load("hub-" + name), load("mosq-" + name)


h, m = both("handshake")
row("full mTLS handshakes/s (32 at a time, higher is better)", h.get("rate"), m.get("rate"))
hs, hp = pair(h, "latency_ms")
ms, mp = pair(m, "latency_ms")
row("full handshake latency p50 / p99 ms (ratio of p99)", hp, mp, hs=hs, ms=ms)
h, m = both("resume")


def resumed(d):
    if "rate" not in d:
        return "n/a"
    return "{:,.0f} ({:.0%} resumed)".format(d["rate"], d.get("resumed_ratio", 0))


row("resumed handshakes/s (session tickets)", h.get("rate"), m.get("rate"), hs=resumed(h),
    ms=resumed(m))
h, m = both("idle")
n = int(E["DEVICES"])


def held(d):
    if "held" not in d:
        return "n/a"
    return "{:,} of {:,}, {} errors".format(d["held"], n, d.get("errors"))


row("idle mTLS MQTT connections held", h.get("held"), m.get("held"), hs=held(h), ms=held(m))
row("connect rate while ramping up to N, %s handshakes at a time (connections/s)" % E["RAMP"],
    h.get("connect_rate"), m.get("connect_rate"))
row("server RSS per held connection, KB (lower is better)", h.get("rss_per_conn_kb"),
    m.get("rss_per_conn_kb"), 1)
row("server RSS with N held, MB", (h.get("rss_after_kb") or 0) / 1024 or None,
    (m.get("rss_after_kb") or 0) / 1024 or None, 1)
for q in ("0", "1"):
    h, m = both("qos%s-max" % q)
    row("QoS %s msgs/s, %s devices -> 1 service, as fast as possible (received)" % (q, E["PUBS"]),
        h.get("received_rate"), m.get("received_rate"))
    h, m = both("qos%s-lat" % q)
    hs, hp = pair(h, "latency_ms")
    ms, mp = pair(m, "latency_ms")
    row("QoS %s latency p50 / p99 ms at %s msgs/s (ratio of p99)" % (q, E["LAT_RATE"]), hp, mp,
        hs=hs, ms=ms)

h, m = load("hub-revoke"), load("mosq-revoke")
hn, mn, mn0 = load("hub-revoke-new"), load("mosq-revoke-new"), load("mosq-revoke-new-nohup")


def verdict(new):
    return "n/a" if not new else ("refused" if new.get("accepted") is False else "ACCEPTED")


def revoked(d, new):
    if not d:
        return "n/a"
    if d.get("closed"):
        s = "{:.0f} ms (API call {:.0f} ms)".format(d["closed_ms"], d["api_ms"])
    else:
        s = "not closed: the session still answered {}/{} pings {:.0f} s after the call".format(
            d.get("pongs"), d.get("pings"), d.get("watched_s", 0))
    return s + "; a new handshake of the device: " + verdict(new)


if m and not m.get("closed"):
    mtext = ("not supported: the CRL file is read at start (and on SIGHUP), the session stays "
             "open; {} pings of {} answered {:.0f} s after the call, SIGHUP included; a new "
             "handshake of the device with the new crlfile: {} before SIGHUP, {} after").format(
                 m.get("pongs"), m.get("pings"), m.get("watched_s", 0), verdict(mn0), verdict(mn))
elif m:
    mtext = ("{:.0f} ms, but only because the new CRL was copied to the crlfile and SIGHUP sent "
             "(started 1.1 s after the call, by the benchmark: Mosquitto does not fetch CRLs); "
             "a new handshake with the new crlfile: {} before SIGHUP, {} after").format(
                 m["closed_ms"], verdict(mn0), verdict(mn))
else:
    mtext = "n/a"
row("revoke API call -> session closed (lower is better)", h.get("closed_ms"),
    m.get("closed_ms") if m.get("closed") else None, hs=revoked(h, hn), ms=mtext)
h, m = both("readmit")


def readmit(d):
    if d.get("readmit_s") is None or d["readmit_s"] < 0:
        return "n/a" if not d else "not all re-admitted ({} of {})".format(
            d.get("readmitted"), n)
    if E.get("READMIT_MODE") == "bench-readmit":
        return "{:.1f} s ({:,} of {:,}: {:,} resumed, {:,} full; server restart {:.1f} s)".format(
            d["readmit_s"], d.get("readmitted", 0), n, d.get("resumed", 0), d.get("full", 0),
            d["restart_s"])
    return "{:.1f} s ({:,} of {:,}; restart {:.1f} s + connect {:.1f} s)".format(
        d["readmit_s"], d.get("readmitted") or 0, n, d["restart_s"], d["connect_s"])


row("re-admit N devices after a restart, s (lower is better)", h.get("readmit_s"),
    m.get("readmit_s"), hs=readmit(h), ms=readmit(m))


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mem_gb():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return "{:.1f} GB".format(int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return "?"


def debian():
    try:
        return open("/etc/debian_version").read().strip()
    except OSError:
        return "?"


quick = E.get("QUICK") == "1"
print("## iothub vs Mosquitto: %s devices%s" % ("{:,}".format(n),
      " (--quick: small numbers, short runs; not the published table)" if quick else ""))
print()
print("| metric | iothub | Mosquitto | ratio (iothub / Mosquitto) |")
print("|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %s |" % r)
print()
print("- machine: %s, %d cores, %s RAM, Linux %s, Debian %s" % (
    cpu_model(), os.cpu_count(), mem_gb(), platform.release(), debian()))
print("- versions: %s (mbedTLS %s), Mosquitto %s (OpenSSL %s); client iothub-bench "
      "(libuv + OpenSSL %s) on the same machine" % (
          E.get("HUB_VERSION"), E.get("MBED"), E.get("MOSQ_VERSION"), E.get("OSSL"),
          E.get("OSSL")))
print("- command: `%s` (each measurement %s s; sources %s; enrollment: %s)" % (
    E["COMMAND"].strip(), E["DURATION"], E["SOURCES"], E.get("ENROLL_LINE", "").replace(
        "iothub-enroll: ", "")))
print("- re-admission measured as: %s" % {
    "idle-full-handshakes": "restart, then `iothub-bench --mode idle -n N` (full handshakes; "
                            "no session resumption across the restart)",
    "bench-readmit": "`iothub-bench --mode readmit`: N devices connected, the server stopped "
                     "(SIGTERM) and started again, each device reconnects with its saved TLS "
                     "session and back-off; time from the first drop to the last CONNACK"}.get(E.get("READMIT_MODE"), "?"))
print("- date: %s" % subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True,
                                    text=True).stdout.strip())
