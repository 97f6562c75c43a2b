#!/usr/bin/env python3
"""Floods and slow clients against a running iothubd (driven by test_floods.sh).

A legitimate device stays connected over mutual TLS the whole time and publishes QoS 1 to a
topic it subscribes to, 50 messages a second; its publish-to-receive latency is measured
before and during each attack:
  1. 2,000 TCP connections to the mTLS listener from eight 127.0.0.x addresses that never
     finish (or never start) the TLS handshake; then more idle connections to the plain-TCP
     listener than mqtt_max_unauthenticated allows;
  2. a slowloris on the HTTPS API (headers sent a byte every 0.5 s) while curl asks /healthz;
  3. garbage: random bytes to the mTLS and the plain-TCP listener, and random bytes after a
     valid mutual-TLS handshake.
Prints TAP-like "ok - ..." / "not ok - ..." lines; exits 1 if any failed.
Usage: test_floods.py ENV.json (see test_floods.sh for its fields)."""
import asyncio
import json
import os
import random
import resource
import socket
import ssl
import struct
import sys
import time

import tap
from mqtt_raw import connect_pkt, publish_pkt, read_packet, subscribe_pkt
from tap import check

ENV = json.load(open(sys.argv[1]))
HOST = "127.0.0.1"
P99_BOUND_MS = 500.0
# Under ASan (IOTHUB_SANITIZERS=1) every thread carries shadow memory and a fake stack:
# memory ceilings are this many times higher there, still low enough to catch unbounded growth.
MEM_FACTOR = 6 if os.environ.get("IOTHUB_SANITIZERS") == "1" else 1
PUBLISH_PERIOD = 0.02


# ---- the server process ------------------------------------------------------------------

def rss_kb():
    with open("/proc/%d/status" % ENV["pid"]) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fds():
    return len(os.listdir("/proc/%d/fd" % ENV["pid"]))


def threads():
    with open("/proc/%d/status" % ENV["pid"]) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def alive():
    try:
        os.kill(ENV["pid"], 0)
        return True
    except OSError:
        return False


class Peak:
    """Samples RSS, descriptors and threads of iothubd every 50 ms while running."""

    def __init__(self):
        self.rss = self.fds = self.threads = 0
        self.task = None

    async def _run(self):
        while True:
            try:
                self.rss = max(self.rss, rss_kb())
                self.fds = max(self.fds, fds())
                self.threads = max(self.threads, threads())
            except OSError:
                pass
            await asyncio.sleep(0.05)

    def __enter__(self):
        self.task = asyncio.get_event_loop().create_task(self._run())
        return self

    def __exit__(self, *exc):
        self.task.cancel()


# ---- MQTT (mqtt_raw.py) --------------------------------------------------------------------

def tls_client_ctx(cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ENV["ca"])
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


async def mqtt_connect(dev, timeout=5.0):
    """TLS + CONNECT with dev's certificate; returns (reader, writer) after CONNACK 0."""
    r, w = await asyncio.wait_for(
        asyncio.open_connection(HOST, ENV["mqtt_port"], ssl=tls_client_ctx(dev["cert"], dev["key"])),
        timeout)
    w.write(connect_pkt(dev["id"]))
    h, b = await asyncio.wait_for(read_packet(r), timeout)
    if h != 0x20 or b[1] != 0:
        raise RuntimeError("CONNACK %02x %s" % (h, b.hex()))
    return r, w


class Device:
    """The legitimate device: publishes seq numbers QoS 1 to its own topic and times them."""

    def __init__(self, dev):
        self.dev = dev
        self.topic = "devices/%s/floods" % dev["id"]
        self.sent = {}  # seq -> monotonic send time
        self.lat = {}   # seq -> latency in ms
        self.seq = 0
        self.disconnected = None
        self.tasks = []

    async def start(self):
        self.r, self.w = await mqtt_connect(self.dev)
        self.w.write(subscribe_pkt(1, [(self.topic, 1)]))
        h, b = await asyncio.wait_for(read_packet(self.r), 5)
        if h != 0x90 or b[2] != 1:
            raise RuntimeError("SUBACK %02x %s" % (h, b.hex()))
        self.tasks = [asyncio.create_task(self._recv()), asyncio.create_task(self._send())]

    async def _send(self):
        pid = 1
        while self.disconnected is None:
            self.seq += 1
            pid = pid % 65535 + 1
            self.sent[self.seq] = time.monotonic()
            self.w.write(publish_pkt(self.topic, b"%d" % self.seq, qos=1, pid=pid))
            await asyncio.sleep(PUBLISH_PERIOD)

    async def _recv(self):
        try:
            while True:
                h, b = await read_packet(self.r)
                if h >> 4 == 3:
                    tl = struct.unpack("!H", b[:2])[0]
                    off = 2 + tl
                    if (h >> 1) & 3:
                        self.w.write(b"\x40\x02" + b[off:off + 2])
                        off += 2
                    seq = int(b[off:])
                    if seq in self.sent and seq not in self.lat:
                        self.lat[seq] = (time.monotonic() - self.sent[seq]) * 1000
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as e:
            self.disconnected = repr(e)

    def stats(self, first, last):
        """p50, p99, max latency (ms) and lost count for seqs first+1..last."""
        seqs = range(first + 1, last + 1)
        lat = sorted(self.lat[s] for s in seqs if s in self.lat)
        lost = sum(1 for s in seqs if s not in self.lat)
        if not lat:
            return 0.0, 0.0, 0.0, lost, 0
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
        return p(0.5), p(0.99), lat[-1], lost, len(seqs)



async def device_process():
    """The device in a process of its own, so that the attackers' work (TLS handshakes in
    Python) does not delay it; commands on stdin: "mark", "stats FIRST LAST", "quit"."""
    dev = Device(ENV["device"])
    await dev.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        cmd = (await reader.readline()).split()
        if not cmd or cmd[0] == b"quit":
            break
        if cmd[0] == b"mark":
            print(dev.seq, flush=True)
        elif cmd[0] == b"stats":
            print(json.dumps(list(dev.stats(int(cmd[1]), int(cmd[2]))) + [dev.disconnected]),
                  flush=True)
    for t in dev.tasks:
        t.cancel()
    dev.w.transport.abort()


class DeviceProxy:
    """Drives device_process from the attacking process."""

    async def start(self):
        self.p = await asyncio.create_subprocess_exec(
            sys.executable, "-u", __file__, sys.argv[1], "--device",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(self.p.stdout.readline(), 15)
        if line.strip() != b"ready":
            raise RuntimeError("the device did not connect")

    async def ask(self, cmd):
        self.p.stdin.write(cmd.encode() + b"\n")
        await self.p.stdin.drain()
        return json.loads(await self.p.stdout.readline())

    async def mark(self):
        return await self.ask("mark")

    async def check(self, name, first, last):
        await asyncio.sleep(1.0)  # the last ones arrive
        p50, p99, mx, lost, n, self.disconnected = await self.ask("stats %d %d" % (first, last))
        check(self.disconnected is None and n > 0 and lost == 0 and p99 < P99_BOUND_MS,
              "device QoS 1 latency %s: %d messages, p50 %.1f ms, p99 %.1f ms, max %.1f ms, "
              "%d lost (bound: p99 < %.0f ms, none lost)" % (name, n, p50, p99, mx, lost,
                                                             P99_BOUND_MS))
        return last

    async def stop(self):
        seq = await self.mark()
        self.p.stdin.write(b"quit\n")
        await self.p.stdin.drain()
        await self.p.wait()
        return seq


# ---- attack helpers ----------------------------------------------------------------------

async def hold(addr, port, src, send=b"", limit=20.0):
    """Opens a TCP connection from src, sends send, and waits until the server closes it.
    Returns seconds from connect to close, None if still open after limit, -1 if the
    connection could not be made."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(addr, port, local_addr=(src, 0)),
                                      limit)
    except (OSError, asyncio.TimeoutError):
        return -1.0
    t0 = time.monotonic()
    try:
        if send:
            w.write(send)
        end = t0 + limit
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            data = await asyncio.wait_for(r.read(65536), left)
            if not data:
                return time.monotonic() - t0
    except (ConnectionError, OSError):
        return time.monotonic() - t0
    except asyncio.TimeoutError:
        return None
    finally:
        w.transport.abort()


def partial_client_hello():
    """The first 40 bytes of a TLS 1.2 ClientHello record announcing 512 bytes."""
    body = b"\x01\x00\x01\xfc\x03\x03" + os.urandom(32)
    return (b"\x16\x03\x01\x02\x00" + body)[:40]


def summary(times):
    done = [t for t in times if t is not None and t >= 0]
    refused = sum(1 for t in times if t is not None and t < 0)
    still = sum(1 for t in times if t is None)
    quick = sum(1 for t in done if t < 1.0)
    return done, refused, still, quick


# ---- 1: handshake flood -------------------------------------------------------------------

async def handshake_flood(dev, dev2):
    hs_timeout = ENV["mqtt_handshake_timeout_ms"] / 1000.0
    per_ip = ENV["mqtt_max_handshakes_per_ip"]
    sources = ["127.0.0.%d" % i for i in range(2, 10)]
    n = 2000
    base_rss, base_fds = rss_kb(), fds()
    first = await dev.mark()
    t0 = time.monotonic()
    with Peak() as peak:
        tasks = []
        for i in range(n):
            send = partial_client_hello() if i % 2 else b""
            tasks.append(asyncio.create_task(
                hold(HOST, ENV["mqtt_port"], sources[i % len(sources)], send)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        # A device connecting now, from another address, gets through.
        t = time.monotonic()
        try:
            r2, w2 = await mqtt_connect(dev2, timeout=5.0)
            new_ms, new_ok = (time.monotonic() - t) * 1000, True
            w2.transport.abort()
        except Exception as e:  # noqa: BLE001 (reported below)
            new_ms, new_ok = (time.monotonic() - t) * 1000, False
            print("# second device: %r" % e)
        times = await asyncio.gather(*tasks)
    last = await dev.mark()
    elapsed = time.monotonic() - t0
    done, refused, still, quick = summary(times)
    await asyncio.sleep(0.5)
    after_rss, after_fds = rss_kb(), fds()
    held = peak.fds - base_fds
    check(still == 0 and refused == 0 and len(done) == n and alive(),
          "handshake flood: all %d connections from %d addresses closed by the server, the "
          "last %.1f s after the flood began (%d within 1 s of connecting, %d later, by the "
          "%.1f s handshake timeout); iothubd alive"
          % (n, len(sources), elapsed, quick, len(done) - quick, hs_timeout))
    check(held <= len(sources) * per_ip + 16,
          "handshake flood: iothubd held at most %d descriptors more than before (cap: %d "
          "addresses x %d handshakes per address + 16)" % (held, len(sources), per_ip))
    check(max(done) <= hs_timeout + 2.0,
          "handshake flood: the slowest was closed %.2f s after connecting (handshake "
          "timeout %.1f s + 2 s)" % (max(done), hs_timeout))
    check(new_ok and new_ms < 2000,
          "handshake flood: a second device connects (TLS + CONNECT) during the flood in "
          "%.0f ms (< 2000 ms)" % new_ms)
    # 2,000 handshaking connections would take 2,000 x ~40 KB (two 16.7 KB record buffers +
    # the SSL context) = 80 MB; the caps admit 8 x per_ip at a time: a ceiling of 16 MB.
    grew = (peak.rss - base_rss) / 1024.0
    check(grew < 16 * MEM_FACTOR,
          "handshake flood: RSS %d KB before, %d KB peak, %d KB after (+%.1f MB < %d MB)"
          % (base_rss, peak.rss, after_rss, grew, 16 * MEM_FACTOR))
    check(after_fds <= base_fds + 2,
          "handshake flood: descriptors back to %d after the flood (%d before)"
          % (after_fds, base_fds))
    await dev.check("during the handshake flood", first, last)


async def unauthenticated_flood(dev):
    """Idle connections to the plain-TCP listener (no handshake, so only the cap on
    connections without an accepted CONNECT and the CONNECT timeout hold them)."""
    cap = ENV["mqtt_max_unauthenticated"]
    connect_s = ENV["mqtt_connect_timeout_s"]
    n = cap + 200
    base_fds = fds()
    first = await dev.mark()
    with Peak() as peak:
        tasks = [asyncio.create_task(hold(HOST, ENV["plain_port"], "127.0.0.%d" % (50 + i % 8)))
                 for i in range(n)]
        times = await asyncio.gather(*tasks)
    last = await dev.mark()
    done, refused, still, quick = summary(times)
    held = peak.fds - base_fds
    check(refused == 0 and still == 0 and held <= cap + 8 and max(done) <= connect_s + 2,
          "unauthenticated flood: %d idle connections to the plain-TCP port, at most %d held "
          "(mqtt_max_unauthenticated = %d), %d closed within 1 s, the rest by the %d s "
          "CONNECT timeout (slowest %.2f s)" % (n, held, cap, quick, connect_s, max(done)))
    await dev.check("during the unauthenticated flood", first, last)


# ---- 2: slowloris on the HTTPS API ----------------------------------------------------------

SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nX-a: b\r\n" * 4


async def slow_client(src, t0, stop_after, head=b"", slow=SLOW_HEADERS):
    """TLS to the API, head at once, then slow a byte every 0.5 s (by default "GET /healthz
    ..." headers). Returns seconds from t0 to the server's close, or None if still open
    after stop_after."""
    ctx = ssl.create_default_context(cafile=ENV["ca"])
    ctx.check_hostname = False
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            HOST, ENV["api_port"], ssl=ctx, local_addr=(src, 0)), 10)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return -1.0
    reading = asyncio.create_task(r.read(1))
    if head:
        w.write(head)
    try:
        for b in slow:
            if reading.done() or time.monotonic() - t0 > stop_after:
                break
            w.write(bytes([b]))
            try:
                await w.drain()
            except (ConnectionError, OSError, ssl.SSLError):
                break
            await asyncio.wait([reading], timeout=0.5)
        if not reading.done():
            return None
        return time.monotonic() - t0
    finally:
        reading.cancel()
        w.transport.abort()


async def curl_healthz():
    t = time.monotonic()
    p = await asyncio.create_subprocess_exec(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert",
        ENV["ca"], "https://%s:%d/healthz" % (HOST, ENV["api_port"]),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    return out.decode(), (time.monotonic() - t) * 1000


async def slowloris(dev):
    header_s = ENV["api_header_timeout_s"]
    idle_s = ENV["api_idle_timeout_s"]
    per_ip = ENV["api_max_connections_per_ip"]
    sources = ["127.0.0.%d" % i for i in range(20, 28)]
    n = len(sources) * (per_ip - 2)
    base_rss, base_threads = rss_kb(), threads()
    first = await dev.mark()
    t0 = time.monotonic()
    with Peak() as peak:
        tasks = [asyncio.create_task(slow_client(sources[i % len(sources)], t0, header_s + 8))
                 for i in range(n)]
        await asyncio.sleep(1.0)
        curls = []
        while not all(t.done() for t in tasks) and time.monotonic() - t0 < header_s + 9:
            curls.append(await curl_healthz())
            await asyncio.sleep(0.25)
        times = await asyncio.gather(*tasks)
    last = await dev.mark()
    done, refused, still, quick = summary(times)
    slowest_curl = max(ms for _, ms in curls)
    check(curls and all(code == "200" for code, _ in curls) and slowest_curl < 2000,
          "slowloris: %d curl GET /healthz during the attack all answered 200, slowest in "
          "%.0f ms (< 2000 ms)" % (len(curls), slowest_curl))
    check(refused == 0 and still == 0 and len(done) == n and
          all(header_s - 0.5 <= t <= header_s + 2.5 for t in done),
          "slowloris: %d slow connections from %d addresses (a header byte every 0.5 s, so "
          "the %d s idle timeout never fires) closed by the %d s header deadline after "
          "%.1f-%.1f s" % (n, len(sources), idle_s, header_s, min(done or [0]),
                           max(done or [0])))
    check(peak.threads - base_threads <= n + 4,
          "slowloris: iothubd had at most %d threads (%d before; one per connection)"
          % (peak.threads, base_threads))
    grew = (peak.rss - base_rss) / 1024.0
    # A connection thread with its GnuTLS session and MHD memory pool touches ~150 KB; the
    # api_max_connections cap bounds them: 200 x 150 KB = 30 MB.
    check(grew < 30 * MEM_FACTOR,
          "slowloris: RSS %d KB before, %d KB peak (+%.1f MB < %d MB)"
          % (base_rss, peak.rss, grew, 30 * MEM_FACTOR))
    await dev.check("during the slowloris", first, last)

    # Complete headers, then the body a byte every 0.5 s: the deadline covers the body too.
    t0 = time.monotonic()
    head = (b"POST /v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b"\r\nContent-Length: 200\r\n\r\n")
    tasks = [asyncio.create_task(slow_client(sources[i], t0, header_s + 8, head, b"{" + b" " * 199))
             for i in range(4)]
    done, refused, still, quick = summary(await asyncio.gather(*tasks))
    check(refused == 0 and still == 0 and len(done) == 4 and
          all(header_s - 0.5 <= t <= header_s + 2.5 for t in done),
          "slow body: 4 connections sending a request body a byte every 0.5 s closed by the "
          "%d s deadline after %.1f-%.1f s" % (header_s, min(done or [0]), max(done or [0])))

    # The per-address cap: one address gets per_ip connections, the next ones are closed.
    t0 = time.monotonic()
    tasks = [asyncio.create_task(slow_client("127.0.0.30", t0, 1.5)) for _ in range(per_ip + 5)]
    times = await asyncio.gather(*tasks)
    kept = sum(1 for t in times if t is None)
    check(kept == per_ip,
          "HTTPS per-address cap: %d of %d connections from one address kept, the rest "
          "closed at once (api_max_connections_per_ip = %d)" % (kept, per_ip + 5, per_ip))


# ---- 3: garbage ---------------------------------------------------------------------------

def garbage(n=4096):
    g = bytearray(os.urandom(n))
    if g[0] == 0x10:  # never a CONNECT type byte
        g[0] = 0xF0
    return bytes(g)


def garbage_after_handshake(dev):
    """Mutual-TLS handshake with dev's certificate through memory BIOs, then random bytes
    on the raw socket (records that fail their MAC). Returns seconds until the server closed
    it, None if still open after 10 s, -1 if the handshake failed."""
    ctx = tls_client_ctx(dev["cert"], dev["key"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False)
    s = socket.create_connection((HOST, ENV["mqtt_port"]), timeout=10)
    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                s.sendall(out.read())
                data = s.recv(65536)
                if not data:
                    return -1.0
                inc.write(data)
        s.sendall(out.read())
    except (OSError, ssl.SSLError):
        s.close()
        return -1.0
    return wait_closed(s, b"\x17\x03\x03\x00\x40" + os.urandom(64) + garbage(2048))


def mqtt_garbage_after_handshake(dev):
    """A completed mutual-TLS session whose plaintext is random bytes (not MQTT)."""
    try:
        s = tls_client_ctx(dev["cert"], dev["key"]).wrap_socket(
            socket.create_connection((HOST, ENV["mqtt_port"]), timeout=10))
    except (OSError, ssl.SSLError):
        return -1.0
    return wait_closed(s, garbage(4096))


def wait_closed(s, send):
    """Sends send on socket s and returns the seconds until the server closes it (None if
    it is still open after the socket timeout)."""
    t0 = time.monotonic()
    try:
        s.sendall(send)
        while s.recv(65536):
            pass
        return time.monotonic() - t0
    except socket.timeout:
        return None
    except (OSError, ssl.SSLError):
        return time.monotonic() - t0
    finally:
        s.close()


async def garbage_burst(dev, dev2):
    limit = max(ENV["mqtt_handshake_timeout_ms"] / 1000.0, ENV["mqtt_connect_timeout_s"]) + 3
    base_fds = fds()
    first = await dev.mark()
    tls = [asyncio.create_task(hold(HOST, ENV["mqtt_port"], "127.0.0.40", garbage(), 10))
           for _ in range(200)]
    plain = [asyncio.create_task(hold(HOST, ENV["plain_port"], "127.0.0.41", garbage(), 10))
             for _ in range(200)]
    loop = asyncio.get_running_loop()
    after_hs = [loop.run_in_executor(None, garbage_after_handshake, dev2) for _ in range(10)]
    mqtt_junk = [loop.run_in_executor(None, mqtt_garbage_after_handshake, dev2)
                 for _ in range(10)]
    for name, group in (("random bytes to the mTLS port", tls),
                        ("random bytes to the plain-TCP port", plain),
                        ("random TLS records after a valid mutual-TLS handshake", after_hs),
                        ("random bytes inside a valid mutual-TLS session", mqtt_junk)):
        times = await asyncio.gather(*group)
        done, refused, still, _ = summary(times)
        check(refused == 0 and still == 0 and max(done) <= limit,
              "garbage: %d connections with %s all closed by the server, the slowest after "
              "%.2f s (<= %.0f s)" % (len(times), name, max(done or [0]), limit))
    last = await dev.mark()
    await asyncio.sleep(0.5)
    check(alive() and fds() <= base_fds + 2,
          "garbage: iothubd alive, descriptors back to %d (%d before)" % (fds(), base_fds))
    await dev.check("during the garbage bursts", first, last)


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    dev = DeviceProxy()
    await dev.start()
    first = await dev.mark()
    await asyncio.sleep(3)
    await dev.check("before any attack", first, await dev.mark())
    await handshake_flood(dev, ENV["device2"])
    await unauthenticated_flood(dev)
    await slowloris(dev)
    await garbage_burst(dev, ENV["device2"])
    sent = await dev.stop()
    check(dev.disconnected is None and alive(),
          "the device kept its one connection through every attack (%d messages sent)" % sent)


if sys.argv[2:] == ["--device"]:
    asyncio.run(device_process())
else:
    asyncio.run(main())
    sys.exit(1 if tap.failed else 0)
