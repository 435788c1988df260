#!/usr/bin/env python3
"""qemu's `guestfwd=...-cmd:` runs this once per guest connection, with that connection on
fd 0/1: it copies bytes both ways to 127.0.0.1:PORT on the host and ends when either side
closes. (The `guestfwd=...-tcp:` form serves only a guest's first connection.)"""
import os
import socket
import sys
import threading

try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
except OSError:
    sys.exit(0)  # the guest sees its connection closed: the receiver is down
s.settimeout(None)


def up():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            s.sendall(b)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass


threading.Thread(target=up, daemon=True).start()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        while b:
            n = os.write(1, b)
            b = b[n:]
except OSError:
    pass
