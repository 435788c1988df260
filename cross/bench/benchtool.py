#!/usr/bin/env python3
"""Small measuring helpers for `peers`; each subcommand prints one TSV line.

  tree PID...              CPU seconds, VmRSS kB, VmHWM kB and process count of the trees
                           rooted at PID... (every live descendant). CPU is the
                           scheduler's ns count of every live thread (/proc/P/task/T/schedstat;
                           utime+stime come in 10 ms ticks, too coarse for tocsin) plus
                           cutime+cstime, so children a tool already reaped (curl spawned
                           by Monit) are counted too.
  port                     a free TCP port on 127.0.0.1 (for the Prometheus stack).
  now                      CLOCK_MONOTONIC in ns (the receiver logs the same clock).
  swap SRC DST             rename SRC over DST (atomic fixture rewrite); print monotonic ns.
  alloc MARGIN TOTAL HOLD  allocate and touch TOTAL bytes in 64 MiB steps; print
                           "crossed <ns>" once MARGIN bytes are touched, hold the memory
                           for at most HOLD s (or until killed), then free it and exit.
  first-line PATTERN TIMEOUT CMD...
                           spawn CMD, print ms from spawn to the first stdout line that
                           contains PATTERN (or "timeout"), then stop CMD.
"""

import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STEP = 64 << 20


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pids):
    kids = children_map()
    seen, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    cpu, rss, hwm, anon, n = 0, 0, 0, 0, 0
    for p in seen:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            with open(f"/proc/{p}/status") as f:
                st = f.read()
        except OSError:
            continue  # exited between listing and reading
        fields = s[s.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state): cutime=16, cstime=17
        ns = 0
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    ns += int(f.read().split()[0])
        except OSError:
            # no schedstat: fall back to the tick counts utime=14, stime=15
            ns = sum(int(x) for x in fields[11:13]) * 10**9 // TICK
        cpu += ns / 1e9 + sum(int(x) for x in fields[13:15]) / TICK
        for line in st.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
            elif line.startswith("RssAnon:"):
                # Anonymous resident memory: what the process cannot give back by
                # dropping file pages (its binary's pages are shared and reclaimable).
                anon += int(line.split()[1])
        n += 1
    print(f"{cpu:.6f}\t{rss}\t{hwm}\t{n}\t{anon}")


def alloc(margin, total, hold):
    chunks, done, crossed = [], 0, False
    while done < total:
        b = bytearray(STEP)
        b[::PAGE] = b"\x01" * (STEP // PAGE)  # touch every page: really resident
        chunks.append(b)
        done += STEP
        if not crossed and done >= margin:
            print(f"crossed\t{time.monotonic_ns()}", flush=True)
            crossed = True
    print(f"allocated\t{done}", flush=True)
    try:
        time.sleep(hold)
    finally:
        chunks.clear()


def first_line(pattern, timeout, cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    os.set_blocking(p.stdout.fileno(), True)
    result = "timeout"
    try:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        buf = b""
        while time.monotonic() - t0 < timeout:
            if not sel.select(timeout=0.05):
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if pattern.encode() in buf:
                result = f"{(time.monotonic() - t0) * 1000:.1f}"
                break
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    print(result)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tree":
        tree([int(a) for a in args])
    elif cmd == "port":
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1])
    elif cmd == "now":
        print(time.monotonic_ns())
    elif cmd == "swap":
        os.rename(args[0], args[1])
        print(time.monotonic_ns())
    elif cmd == "alloc":
        alloc(int(args[0]), int(args[1]), float(args[2]))
    elif cmd == "first-line":
        first_line(args[0], float(args[1]), args[2:])
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
