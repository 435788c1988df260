#!/usr/bin/env python3
"""Checks that every system call an strace log shows is allowed by a unit's
SystemCallFilter= lines (an allow list, then ~deny lists), expanding @groups with
`systemd-analyze syscall-filter`. Prints the calls used and any that would be refused.

Usage: syscalls.py UNIT_FILE STRACE_LOG
"""
import re
import subprocess
import sys

unit, log = sys.argv[1:3]
cache = {}


def expand(name):
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(
            ["systemd-analyze", "syscall-filter", name],
            check=True, capture_output=True, text=True,
        ).stdout.splitlines()
        calls = set()
        for line in out[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                calls |= expand(line)
        cache[name] = calls
    return cache[name]


allowed = None
for line in open(unit):
    m = re.match(r"\s*SystemCallFilter=(~?)(.*)", line)
    if not m:
        continue
    names = set().union(*(expand(n) for n in m.group(2).split()))
    if m.group(1):
        allowed = (allowed if allowed is not None else set()) - names
    else:
        allowed = (allowed or set()) | names
if allowed is None:
    sys.exit("no SystemCallFilter= in " + unit)

used = set()
for line in open(log):
    m = re.match(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?([a-z0-9_]+)\(", line)
    if m:
        used.add(m.group(1))
# execve is how strace starts the program, not something the agent calls.
used.discard("execve")
refused = sorted(used - allowed)
print(f"{len(used)} distinct system calls used: {' '.join(sorted(used))}")
if refused:
    print(f"REFUSED by the unit's SystemCallFilter: {' '.join(refused)}")
    sys.exit(1)
print("all allowed by the unit's SystemCallFilter")
