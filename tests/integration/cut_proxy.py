"""An HTTP CONNECT proxy that breaks one download midway, for test_rollout_e2e.sh: the first
tunnel that carries more than CUT bytes towards the client is closed right there (both
sides); every other tunnel is relayed untouched. Usage: cut_proxy.py PORT CUT LOG."""

import socket
import sys
import threading

PORT, CUT, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cut_done = threading.Event()
lock = threading.Lock()


def log(msg):
    with lock, open(LOG, "a") as f:
        f.write(msg + "\n")


def pipe(src, dst, count):
    total = 0
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            if count and not cut_done.is_set() and total + len(data) > CUT:
                with lock:
                    first = not cut_done.is_set()
                    cut_done.set()
                if first:
                    dst.sendall(data[:CUT - total])
                    log("cut after %d bytes" % CUT)
                    break
            dst.sendall(data)
            total += len(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def handle(c):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            data = c.recv(4096)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode()
        method, target = line.split()[:2]
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        u = socket.create_connection((host, int(port)), timeout=10)
        u.settimeout(None)
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        log("tunnel to %s" % target)
        threading.Thread(target=pipe, args=(c, u, False), daemon=True).start()
        pipe(u, c, True)
    except (OSError, ValueError) as e:
        log("error: %s" % e)
    finally:
        c.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(64)
log("listening")
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
