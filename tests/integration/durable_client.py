"""MQTT clients of the durability tests (test_durable*.sh), built on mqtt_raw.py so a test
knows exactly which PUBACKs a publisher received.

  backend CA CERT HOST PORT ID FILTER...       the persistent session ID (clean 0) subscribes
                                               to each FILTER at QoS 1, then disconnects
  publish CA HOST PORT OUT COUNT NAME:DEVID... each device publishes COUNT QoS 1 messages
          [--kill PID --after N]                ("<seq>") to devices/DEVID/telemetry, up to 16
          [--pause FILE]                        in flight; OUT gets the seqs each one got a
                                               PUBACK for. --kill: SIGKILL PID once N PUBACKs
                                               arrived in all; --pause: no PUBACK for 2 s
                                               writes FILE (the acks are held) once
  receive CA CERT HOST PORT ID ACKED OUT       the persistent session ID reconnects (clean 0)
                                               and reads until every acknowledged seq of
                                               ACKED arrived (30 s at most): checks none is
                                               missing and that each publisher's messages
                                               come in order; OUT gets the counts
"""

import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_raw import (PUBACK, PUBLISH, Closed, Conn, ack_pkt, publish_pkt,  # noqa: E402
                      tls_context)


def backend(ca, cert, host, port, client_id, filters):
    c = Conn(host, int(port), tls_context(ca, cert + ".pem", cert + ".key"))
    present, rc = c.connect(client_id, clean=False)
    assert rc == 0, "CONNACK %d" % rc
    codes = c.subscribe(1, [(f, 1) for f in filters])
    assert all(x == 1 for x in codes), "SUBACK %r" % codes
    c.disconnect()
    print("subscribed %s (session present %d)" % (" ".join(filters), present))


def publish(ca, host, port, out, count, devices, kill=None, after=0, pause=None):
    acked, lock, total = {}, threading.Lock(), [0]
    state = {"killed": False, "paused": False}

    def run(name, dev):
        got = acked.setdefault(dev, [])
        try:
            c = Conn(host, int(port), tls_context(ca, name + ".pem", name + ".key"))
            c.connect("pub-" + name)
        except (Closed, OSError, AssertionError) as e:
            print("%s: no connection: %r" % (name, e), file=sys.stderr)
            return
        inflight, seq, pid = {}, 0, 0
        topic = "devices/%s/telemetry" % dev
        deadline = time.monotonic() + 60
        try:
            while (seq < count or inflight) and time.monotonic() < deadline:
                while seq < count and len(inflight) < 16:
                    pid = pid % 65535 + 1
                    c.send(publish_pkt(topic, str(seq), 1, pid=pid))
                    inflight[pid] = seq
                    seq += 1
                p = c.read(timeout=2.0)
                if p is None:
                    if pause and not state["paused"]:
                        state["paused"] = True
                        with open(pause, "w") as f:
                            f.write("acks held\n")
                    if state["killed"] or (not pause and seq >= count):
                        break
                    continue
                if p.type != PUBACK or p.pid not in inflight:
                    continue
                got.append(inflight.pop(p.pid))
                with lock:
                    total[0] += 1
                    if kill and not state["killed"] and total[0] >= after:
                        state["killed"] = True
                        os.kill(kill, signal.SIGKILL)
        except (Closed, OSError):
            pass
        c.close()

    threads = [threading.Thread(target=run, args=d.split(":", 1)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(acked, open(out, "w"))
    print("acknowledged: %s" % ", ".join("%d" % len(v) for v in acked.values()))


def receive(ca, cert, host, port, client_id, acked_file, out):
    acked = {d: set(v) for d, v in json.load(open(acked_file)).items()}
    want = sum(len(v) for v in acked.values())
    c = Conn(host, int(port), tls_context(ca, cert + ".pem", cert + ".key"))
    present, rc = c.connect(client_id, clean=False)
    assert rc == 0, "CONNACK %d" % rc
    got = {d: [] for d in acked}
    deadline = time.monotonic() + 30
    missing = want
    while time.monotonic() < deadline:
        p = c.read(timeout=1.5 if missing == 0 else 3.0)
        if p is None:
            if missing == 0:
                break
            continue
        if p.type != PUBLISH:
            continue
        if p.qos:
            c.send(ack_pkt(PUBACK, p.pid))
        dev = p.topic.split("/")[1]
        seq = int(p.payload)
        if dev in got:
            if seq in acked[dev] and seq not in got[dev]:
                missing -= 1
            got[dev].append(seq)
    c.disconnect()
    problems = []
    for d, seqs in got.items():
        lost = sorted(acked[d] - set(seqs))
        if lost:
            problems.append("%s: %d acknowledged message(s) lost, first %r" % (d, len(lost), lost[:5]))
        first = []
        for s in seqs:
            if s not in first:
                first.append(s)
        if first != sorted(first):
            problems.append("%s: out of order: %r" % (d, first[:20]))
    json.dump({"present": present, "acknowledged": want,
               "received": sum(len(v) for v in got.values()),
               "distinct": sum(len(set(v)) for v in got.values())}, open(out, "w"))
    for p in problems:
        print(p, file=sys.stderr)
    print("session present %d, %d acknowledged, %d received" %
          (present, want, sum(len(v) for v in got.values())))
    sys.exit(1 if problems or not present else 0)


def main():
    a = sys.argv[1:]
    if a[0] == "backend":
        backend(a[1], a[2], a[3], a[4], a[5], a[6:])
    elif a[0] == "publish":
        kill = after = 0
        pause = None
        rest = []
        i = 6
        while i < len(a):
            if a[i] == "--kill":
                kill, after, i = int(a[i + 1]), int(a[i + 3]), i + 4
            elif a[i] == "--pause":
                pause, i = a[i + 1], i + 2
            else:
                rest.append(a[i])
                i += 1
        publish(a[1], a[2], a[3], a[4], int(a[5]), rest, kill or None, after, pause)
    elif a[0] == "receive":
        receive(a[1], a[2], a[3], a[4], a[5], a[6], a[7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
