"""A raw MQTT 3.1.1 client over TLS for the integration tests (test_mqtt_protocol.py,
test_faults.py, test_floods.py): packets built byte by byte, so a test can send what a
library would refuse to, and read whole packets with deadlines. Blocking sockets for the
Conn class, asyncio streams for read_packet."""

import socket
import ssl
import struct
import threading
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# ---- packets ------------------------------------------------------------------------------


def enc_len(n):
    """The remaining-length field of n."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def enc_str(s):
    """A UTF-8 string (str or bytes) with its 16-bit length."""
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(ptype, flags, body=b""):
    return bytes([ptype << 4 | flags]) + enc_len(len(body)) + body


def connect_pkt(client_id, clean=True, keepalive=60, will=None, proto="MQTT", level=4):
    """will: (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = enc_str(client_id)
    if will is not None:
        topic, msg, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += enc_str(topic) + enc_str(msg)
    body = enc_str(proto) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload
    return packet(CONNECT, 0, body)


def publish_pkt(topic, payload, qos=0, retain=False, pid=0, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    body = enc_str(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(PUBLISH, (0x08 if dup else 0) | qos << 1 | (1 if retain else 0), body)


def subscribe_pkt(pid, filters):
    """filters: [(topic filter, requested QoS)]."""
    body = struct.pack("!H", pid) + b"".join(enc_str(f) + bytes([q]) for f, q in filters)
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe_pkt(pid, filters):
    return packet(UNSUBSCRIBE, 0x02, struct.pack("!H", pid) + b"".join(enc_str(f) for f in filters))


def ack_pkt(ptype, pid):
    """PUBACK, PUBREC, PUBREL or PUBCOMP for pid."""
    return packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", pid))


PINGREQ_PKT = packet(PINGREQ, 0)
DISCONNECT_PKT = packet(DISCONNECT, 0)


class Packet:
    """A packet read from the server; PUBLISH fields (topic, payload, qos, pid ...) decoded."""

    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body
        if ptype == PUBLISH:
            self.dup = bool(flags & 0x08)
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            n = struct.unpack("!H", body[:2])[0]
            self.topic = body[2:2 + n].decode()
            off = 2 + n
            self.pid = 0
            if self.qos:
                self.pid = struct.unpack("!H", body[off:off + 2])[0]
                off += 2
            self.payload = body[off:]
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK) and len(body) == 2:
            self.pid = struct.unpack("!H", body)[0]

    def __repr__(self):
        if self.type == PUBLISH:
            return "PUBLISH(%s, %r, qos=%d, dup=%d, retain=%d, pid=%d)" % (
                self.topic, self.payload[:40], self.qos, self.dup, self.retain, self.pid)
        return "Packet(type=%d, flags=%d, body=%r)" % (self.type, self.flags, self.body[:40])


class Closed(Exception):
    """The server closed the connection."""

# ---- TLS connections ----------------------------------------------------------------------


def tls_context(ca, cert=None, key=None):
    """A client context that trusts ca and presents cert/key when given."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ca)
    if cert:
        c.load_cert_chain(cert, key)
    return c


class Conn:
    """One TLS connection: send raw bytes (from any thread), read whole MQTT packets with
    deadlines. Packets read while looking for another type are kept, in order, for later
    reads."""

    def __init__(self, host, port, ctx, timeout=5.0, session=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.s = ctx.wrap_socket(raw, server_hostname=host, session=session)
        except BaseException:
            raw.close()
            raise
        self.buf = b""
        self.pending = []
        self.eof = False
        self.alert = None  # the reason of the TLS error that ended the connection, if any
        self.lock = threading.Lock()

    def send(self, data):
        with self.lock:
            self.s.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes; False on timeout, raises Closed on EOF."""
        if self.eof:
            raise Closed()
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.s.settimeout(left)
        try:
            data = self.s.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLError as e:
            self.alert, data = e.reason, b""
        except OSError:
            data = b""
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data
        return True

    def _parse(self):
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise ValueError("malformed remaining length from the server")
        if len(self.buf) < i + n:
            return None
        p = Packet(self.buf[0] >> 4, self.buf[0] & 0x0F, self.buf[i:i + n])
        self.buf = self.buf[i + n:]
        return p

    def read(self, timeout=5.0):
        """The next packet, None on timeout; raises Closed on EOF."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is not None:
                return p
            if not self._fill(deadline):
                return None

    def expect(self, ptype, timeout=5.0):
        """The first packet of ptype (others are kept); raises AssertionError on timeout."""
        for i, p in enumerate(self.pending):
            if p.type == ptype:
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is None:
                if not self._fill(deadline):
                    raise AssertionError("no packet of type %d within %.1f s" % (ptype, timeout))
                continue
            if p.type == ptype:
                return p
            self.pending.append(p)

    def publishes(self, n, timeout=5.0):
        """n PUBLISH packets (fewer if they do not come in time)."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(self.expect(PUBLISH, max(0.0, deadline - time.monotonic())))
            except AssertionError:
                break
        return out

    def quiet(self, seconds=0.7):
        """The PUBLISH packets received within `seconds` (expected: none)."""
        got, deadline = [], time.monotonic() + seconds
        while True:
            try:
                got.append(self.expect(PUBLISH, max(0.0, deadline - time.monotonic())))
            except AssertionError:
                return got

    def closed_within(self, seconds):
        """True when the server closes the connection within `seconds` (other packets are
        discarded)."""
        deadline = time.monotonic() + seconds
        self.pending = []
        try:
            while True:
                while self._parse() is not None:
                    pass
                if not self._fill(deadline):
                    return False
        except Closed:
            return True

    def connect(self, client_id, **kw):
        """Sends CONNECT; returns (session present, return code)."""
        self.send(connect_pkt(client_id, **kw))
        p = self.expect(CONNACK)
        return p.body[0] & 1, p.body[1]

    def subscribe(self, pid, filters):
        """Returns the SUBACK return codes."""
        self.send(subscribe_pkt(pid, filters))
        p = self.expect(SUBACK)
        assert p.body[:2] == struct.pack("!H", pid), "SUBACK for another packet id"
        return list(p.body[2:])

    def publish(self, topic, payload, qos=0, retain=False, pid=1, dup=False):
        """Publishes; for QoS 1 waits for the PUBACK, for QoS 2 runs PUBREC/PUBREL/PUBCOMP."""
        self.send(publish_pkt(topic, payload, qos, retain, pid, dup))
        if qos == 1:
            assert self.expect(PUBACK).pid == pid
        elif qos == 2:
            assert self.expect(PUBREC).pid == pid
            self.send(ack_pkt(PUBREL, pid))
            assert self.expect(PUBCOMP).pid == pid

    def ping(self, timeout=3.0):
        self.send(PINGREQ_PKT)
        self.expect(PINGRESP, timeout)
        return True

    def disconnect(self):
        try:
            self.send(DISCONNECT_PKT)
            self.closed_within(2)
        except OSError:
            pass
        self.close()

    def close(self):
        """Closes the socket without DISCONNECT."""
        try:
            self.s.close()
        except OSError:
            pass

def refusal(host, port, ctx, session=None, timeout=5.0):
    """How the server refuses an MQTT session to a TLS connection made with ctx: the name of
    the TLS alert it sent during or right after the handshake (e.g.
    "SSLV3_ALERT_CERTIFICATE_REVOKED"), "closed" when it closed the handshake without one,
    "CONNACK n" when it refused the CONNECT, "no CONNACK" when it closed after the CONNECT;
    None when the session was accepted."""
    try:
        c = Conn(host, port, ctx, timeout, session)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return "closed"
    except ssl.SSLError as e:
        return e.reason or str(e)
    except OSError:
        return "closed"
    try:
        # A refusal right after the handshake (a revocation seen then) comes at once; reading
        # it before sending keeps the alert from being lost to a reset.
        c._fill(time.monotonic() + 0.3)
        c.send(connect_pkt("refused-probe"))
        rc = c.expect(CONNACK, 3).body[1]
        return "CONNACK %d" % rc if rc != 0 else None
    except (Closed, AssertionError, OSError):
        return c.alert or "no CONNACK"
    finally:
        c.close()

# ---- asyncio ------------------------------------------------------------------------------


async def read_packet(reader):
    """(first byte, body) of the next packet of an asyncio StreamReader."""
    h = (await reader.readexactly(1))[0]
    mult, n = 1, 0
    while True:
        d = (await reader.readexactly(1))[0]
        n += (d & 0x7F) * mult
        mult *= 128
        if not d & 0x80:
            break
    return h, await reader.readexactly(n)
