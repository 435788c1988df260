#!/usr/bin/env python3
"""Smoke-test receiver for cross/smoke: answers every request with 200 on 127.0.0.1, once
over plain HTTP and once over HTTPS (the certificate given), and appends one line per
request ("SCHEME METHOD PATH EVENT-TYPE BODY-BYTES") to a log. Writes the two ports it
picked to PORTS_FILE, then serves until LIFETIME seconds have passed: it always stops by
itself.

Usage: receiver.py CERT KEY PORTS_FILE LOG_FILE LIFETIME
"""
import http.server
import ssl
import sys
import threading
import time

cert, key, ports_file, log_file, lifetime = sys.argv[1:6]
lock = threading.Lock()


def handler(scheme):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            kind = self.headers.get("X-Tocsin-Event-Type", "-")
            with lock, open(log_file, "a") as f:
                f.write(f"{scheme} {self.command} {self.path} {kind} {len(body)}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_GET = do_any

        def log_message(self, *args):
            pass

    return Handler


plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler("http"))
tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler("https"))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
for s in (plain, tls):
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open(ports_file + ".tmp", "w") as f:
    f.write(f"{plain.server_address[1]} {tls.server_address[1]}\n")
import os  # noqa: E402  (rename last: the shell waits for the file to appear whole)

os.rename(ports_file + ".tmp", ports_file)
time.sleep(float(lifetime))
