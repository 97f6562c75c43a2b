#!/usr/bin/env python3
"""A small HTTPS file server for the agent's firmware tests (tests/integration/).

Serves ROOT/<name> with ETag "<sha256 hex>", Accept-Ranges, Range: bytes=N- / N-M (206 with
Content-Range) and If-Range. A file ROOT/<name>.drop makes the next GET of <name> send half
of the bytes it announced and close the connection (the flag is removed): a broken download;
ROOT/<name>.stall sends half and then nothing for 40 s (an agent killed meanwhile).
It asks for a client certificate (verified against --client-ca) and logs one line per request
to --log: "GET <path> range=<Range or -> if-range=<If-Range or -> cn=<client CN or ->
status=<code>". Usage: fw_server.py PORT ROOT CERT KEY --client-ca CA.pem --log FILE
"""
import argparse
import hashlib
import http.server
import os
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def note(self, status):
        cn = "-"
        cert = self.connection.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
        with open(self.server.log, "a") as f:
            f.write("GET %s range=%s if-range=%s cn=%s status=%d\n" % (
                self.path, self.headers.get("Range", "-"), self.headers.get("If-Range", "-"),
                cn, status))

    def fail(self, status):
        self.note(status)
        body = b'{"error":{"code":"not_found","message":"no such file"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        name = os.path.basename(self.path)
        path = os.path.join(self.server.root, name)
        if not name or not os.path.isfile(path):
            return self.fail(404)
        data = open(path, "rb").read()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()
        start, end, status = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and (if_range is None or if_range == etag):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else len(data) - 1
            if start >= len(data):
                return self.fail(416)
            status = 206
        body = data[start:end + 1]
        self.note(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
        self.end_headers()
        stall = path + ".stall"
        if os.path.exists(stall):
            os.unlink(stall)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(40)
            self.close_connection = True
            return
        drop = path + ".drop"
        if os.path.exists(drop):
            os.unlink(drop)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("root")
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("--client-ca", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.root, srv.log = a.root, a.log
    print("listening", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
