#!/usr/bin/env python3
"""Benchmark receiver: one HTTP/1.1 server on 127.0.0.1 that every tool posts to.

Each request is answered 200 and logged as one TSV line, flushed at once:

    monotonic_ns  wall_ns  connection  method  path  body_bytes

The path names the sender and the rule (`/tocsin/mem`, `/monit/disk`, ...), so one
receiver serves all tools and `peers` reads arrival times from the log. Connections are
kept alive (HTTP/1.1), and `connection` numbers each TCP connection, so the log shows
whether a sender reused one. The server exits by itself after --lifetime seconds, so
a crashed bench never leaves it behind.

Usage: receiver.py --port-file FILE --log FILE [--lifetime SECONDS]
"""

import argparse
import http.server
import itertools
import os
import sys
import threading
import time

_conn_ids = itertools.count()
_log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

    def setup(self):
        super().setup()
        self.conn_id = next(_conn_ids)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        mono, wall = time.monotonic_ns(), time.time_ns()
        line = f"{mono}\t{wall}\t{self.conn_id}\t{self.command}\t{self.path}\t{len(body)}\n"
        with _log_lock:
            LOG.write(line)
            LOG.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_GET = _handle

    def log_message(self, *args):  # the TSV log is the only output
        pass


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=1800)
    args = ap.parse_args()

    LOG = open(args.log, "a", encoding="ascii")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)  # the script waits for this file to appear

    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever(poll_interval=0.2)
    sys.exit(0)


if __name__ == "__main__":
    main()
