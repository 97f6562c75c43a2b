#!/usr/bin/env python3
"""Raw HTTP/1.1 over TLS for the strict-HTTP tests: sends bytes exactly as given (smuggling
attempts, bad framing, oversized heads) and reports every answer the server gave on the
connection and whether it closed it.

    http_raw.py PORT CAFILE REQUEST-FILE [WAIT_S]

REQUEST-FILE is sent as is (its line endings too). Prints one JSON object:
{"answers": [{"status", "headers" (lower-case names), "body"}], "closed": bool,
 "error": str|null}. Reads until the server closes or WAIT_S seconds (default 3) pass
without data."""
import json
import socket
import ssl
import sys


def parse(buf):
    """Splits buf into complete answers; returns (answers, rest)."""
    answers = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return answers, buf
        head = buf[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0") or 0)
        if len(buf) < end + 4 + n:
            return answers, buf
        body = buf[end + 4:end + 4 + n].decode("utf-8", "replace")
        answers.append({"status": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
                        "headers": headers, "body": body})
        buf = buf[end + 4 + n:]


def main():
    port, ca, req = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    wait = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    data = open(req, "rb").read()
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    out = {"answers": [], "closed": False, "error": None}
    buf = b""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(data)
        s.settimeout(wait)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                out["closed"] = True
                break
            buf += chunk
        s.close()
    except (OSError, ssl.SSLError) as e:
        # A reset after the answer (unread bytes at close) still counts as closed.
        out["closed"] = True
        out["error"] = type(e).__name__ + ": " + str(e)
    out["answers"], rest = parse(buf)
    if rest:
        out["rest"] = rest[:200].decode("latin-1")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
