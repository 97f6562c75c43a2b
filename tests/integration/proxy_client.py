#!/usr/bin/env python3
"""Clients for test_proxy.sh that choose their source address (127.0.0.x), which
mosquitto_pub and openssl s_client cannot do.

  mqtt HOST PORT BIND CA CERT KEY TOPIC   mutual-TLS MQTT (paho): connect from BIND, publish
                                          one QoS 1 message to TOPIC, disconnect; exit 0 on
                                          CONNACK accepted and PUBACK
  hold HOST PORT BIND N SECONDS           opens N TCP connections from BIND that send nothing
                                          (handshakes in progress), keeps them SECONDS
  raw HOST PORT BIND HEX [SECONDS]        sends the bytes HEX, then waits up to SECONDS (3)
                                          for the server to close; prints "closed" or "open"
  v2 KIND                                 prints a PROXY v2 header (hex) of a KIND: tcp4,
                                          local, unix, badver, truncated, bigtlv, tlvbad
"""
import socket
import ssl
import struct
import sys
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(kind):
    addr = socket.inet_aton("203.0.113.7") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, 8883)
    if kind == "tcp4":
        return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr
    if kind == "local":
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if kind == "unix":
        body = b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
        return SIG + bytes([0x21, 0x31]) + struct.pack("!H", len(body)) + body
    if kind == "badver":
        return SIG + bytes([0x31, 0x11]) + struct.pack("!H", len(addr)) + addr
    if kind == "truncated":  # announces 12 bytes of addresses, sends 6 and stops
        return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr[:6]
    if kind == "bigtlv":  # a 1000-byte TLV: over the 512-byte limit
        tlv = bytes([0xE0]) + struct.pack("!H", 1000) + b"x" * 1000
        return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addr) + len(tlv)) + addr + tlv
    if kind == "tlvbad":  # a TLV whose length runs past the header
        tlv = bytes([0xE0]) + struct.pack("!H", 50) + b"x" * 10
        return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addr) + len(tlv)) + addr + tlv
    raise SystemExit("unknown kind " + kind)


def connect(host, port, bind):
    s = socket.socket()
    s.bind((bind, 0))
    s.connect((host, int(port)))
    return s


def cmd_mqtt(host, port, bind, ca, cert, key, topic):
    import paho.mqtt.client as mqtt
    result = {}
    c = mqtt.Client(client_id="", clean_session=True)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    c.on_connect = lambda cl, u, f, rc: result.setdefault("connack", rc)
    c.on_publish = lambda cl, u, mid: result.setdefault("puback", mid)
    try:
        c.connect(host, int(port), keepalive=30, bind_address=bind)
    except (ssl.SSLError, OSError) as e:
        print("connect failed:", e)
        return 1
    c.loop_start()
    deadline = time.time() + 10
    while "connack" not in result and time.time() < deadline:
        time.sleep(0.05)
    if result.get("connack") != 0:
        print("no CONNACK 0:", result)
        c.loop_stop()
        return 1
    c.publish(topic, b"via proxy", qos=1)
    while "puback" not in result and time.time() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    print("connack", result.get("connack"), "puback", result.get("puback"))
    return 0 if "puback" in result else 1


def cmd_hold(host, port, bind, n, seconds):
    socks = [connect(host, port, bind) for _ in range(int(n))]
    print("holding", len(socks), flush=True)
    time.sleep(float(seconds))
    for s in socks:
        s.close()
    return 0


def cmd_raw(host, port, bind, hexdata, seconds="3"):
    s = connect(host, port, bind)
    s.sendall(bytes.fromhex(hexdata))
    s.settimeout(float(seconds))
    try:
        while True:
            d = s.recv(4096)
            if not d:
                print("closed")
                return 0
    except ConnectionResetError:
        print("closed")
        return 0
    except socket.timeout:
        print("open")
        return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "v2":
        print(v2(args[0]).hex())
        return 0
    return {"mqtt": cmd_mqtt, "hold": cmd_hold, "raw": cmd_raw}[cmd](*args)


if __name__ == "__main__":
    sys.exit(main())
