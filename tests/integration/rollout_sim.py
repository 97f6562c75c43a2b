"""Simulated firmware agents for tests/integration/test_rollouts.sh: one thread per device,
MQTT 3.1.1 over plain TCP with the device's id and secret (mqtt_plain_listen), standard
library only. Usage: rollout_sim.py PORT DIR, where DIR/devices holds "id secret behavior
version" lines. A device is online while DIR/<id>.online exists. It subscribes to
devices/<id>/firmware/notice, reports {"state": "running"} after each connection, appends
every notice to DIR/<id>.notices and answers it by its behavior:
  ok       downloading, verifying, installing, installed (the notice's version)
  fail     downloading, failed
  rollback downloading, verifying, installing, rolled_back
  silent   nothing
A notice of a rollout it already finished gets its final state again. The content of
DIR/<id>.send, when that file appears, is published as is on devices/<id>/firmware/state."""

import json
import os
import socket
import struct
import sys
import threading
import time

PORT, DIR = int(sys.argv[1]), sys.argv[2]


def enc_str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(s)) + s


def enc_len(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + enc_len(len(body)) + body


def log(msg):
    with open(os.path.join(DIR, "sim.log"), "a") as f:
        f.write("%.3f %s\n" % (time.time(), msg))


class Device:
    def __init__(self, did, secret, behavior, version):
        self.id, self.secret, self.behavior, self.version = did, secret, behavior, version
        self.done = {}  # rollout id -> final report
        self.pid = 0

    def path(self, ext):
        return os.path.join(DIR, "%s.%s" % (self.id, ext))

    def publish(self, s, report):
        self.pid = self.pid % 65535 + 1
        topic = "devices/%s/firmware/state" % self.id
        payload = report if isinstance(report, bytes) else json.dumps(report).encode()
        s.sendall(packet(3, 2, enc_str(topic) + struct.pack("!H", self.pid) + payload))

    def answer(self, s, notice):
        rid = notice.get("rollout_id")
        if rid in self.done:
            self.publish(s, self.done[rid])
            return
        steps = {"ok": ["downloading", "verifying", "installing", "installed"],
                 "fail": ["downloading", "failed"],
                 "rollback": ["downloading", "verifying", "installing", "rolled_back"]}
        for st in steps.get(self.behavior, []):
            r = {"rollout_id": rid, "state": st, "version": self.version}
            if st == "downloading":
                r["progress"] = 0
            if st == "installed":
                self.version = r["version"] = notice.get("version")
            if st in ("failed", "rolled_back"):
                r["reason"] = "install hook exited with status 1" if st == "failed" \
                    else "health check failed: rolled back to slot A"
            self.publish(s, r)
            time.sleep(0.05)
            if st in ("installed", "failed", "rolled_back"):
                self.done[rid] = r

    def session(self):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        body = enc_str("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60) + \
            enc_str("sim-" + self.id) + enc_str(self.id) + enc_str(self.secret)
        s.sendall(packet(1, 0, body))
        buf = b""
        subscribed = False
        s.settimeout(0.1)
        while os.path.exists(self.path("online")):
            if os.path.exists(self.path("send")):
                data = open(self.path("send"), "rb").read()
                os.unlink(self.path("send"))
                self.publish(s, data)
            try:
                data = s.recv(65536)
                if not data:
                    log("%s: closed by the server" % self.id)
                    return
                buf += data
            except socket.timeout:
                pass
            while len(buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(buf):
                    n += (buf[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not buf[i - 1] & 0x80:
                        break
                else:
                    break
                if len(buf) < i + n:
                    break
                ptype, flags, body = buf[0] >> 4, buf[0] & 15, buf[i:i + n]
                buf = buf[i + n:]
                if ptype == 2 and not subscribed:  # CONNACK
                    if body[1] != 0:
                        log("%s: CONNACK %d" % (self.id, body[1]))
                        return
                    s.sendall(packet(8, 2, struct.pack("!H", 1) +
                                     enc_str("devices/%s/firmware/notice" % self.id) + b"\x01"))
                elif ptype == 9:  # SUBACK
                    subscribed = True
                    self.publish(s, {"rollout_id": None, "state": "running",
                                     "version": self.version})
                    open(self.path("ready"), "w").close()
                elif ptype == 3:  # PUBLISH
                    tl = struct.unpack("!H", body[:2])[0]
                    qos = (flags >> 1) & 3
                    off = 2 + tl
                    if qos:
                        pid = body[off:off + 2]
                        off += 2
                        s.sendall(packet(4, 0, pid))
                    payload = body[off:]
                    with open(self.path("notices"), "ab") as f:
                        f.write(payload + b"\n")
                    try:
                        self.answer(s, json.loads(payload))
                    except ValueError:
                        log("%s: bad notice %r" % (self.id, payload[:100]))
        s.sendall(packet(14, 0, b""))
        s.close()

    def run(self):
        while True:
            if os.path.exists(self.path("online")):
                try:
                    self.session()
                except OSError as e:
                    log("%s: %s" % (self.id, e))
                try:
                    os.unlink(self.path("ready"))
                except OSError:
                    pass
            time.sleep(0.1)


for line in open(os.path.join(DIR, "devices")):
    did, secret, behavior, version = line.split()
    threading.Thread(target=Device(did, secret, behavior, version).run, daemon=True).start()
while True:
    time.sleep(1)
