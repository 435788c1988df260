#!/usr/bin/env python3
"""The VM test: tocsin's .deb under a real systemd (Debian 12, PID 1), through real power
cuts. Run by tests/vm/run, which builds the image and the packages first.

The guest's only network is qemu's user mode with restrict=on: 10.0.2.100:80 is relayed to
the receiver below, 10.0.2.101:80 to the control server below, both on the host's
127.0.0.1; nothing else is reachable. The guest's vm-harness fetches shell commands from
the control server and posts their output back, so every check is a command run for real
in the guest, and the host decides when the machine stops: poweroff, reboot, or SIGKILL
to the qemu process (a power cut).

Usage: run.py BASE_DIR NEW_DEB OLD_DEB WORK_DIR [CUTS]
"""
import http.server
import json
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import time

base, new_deb, old_deb, work = sys.argv[1:5]
cuts = int(sys.argv[5]) if len(sys.argv) > 5 else 5
seed = int(os.environ.get("TOCSIN_VM_SEED") or time.time_ns() % 1_000_000_007)
rng = random.Random(seed)
here = os.path.dirname(os.path.abspath(__file__))
t_start = time.monotonic()
TOKEN = "vmtok-%016x" % random.SystemRandom().getrandbits(64)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STATE = "/var/lib/private/tocsin"
# Drivers of the machine's own devices that nothing in the test uses: not loaded at boot.
UNUSED_MODULES = "ata_piix,ata_generic,pata_acpi,libata,cfg80211,pcspkr,powernow_k8,psmouse,serio_raw,i2c_piix4,evdev,joydev,button"


def log(msg):
    print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True)


# ---- the receiver ---------------------------------------------------------------------
class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # dicts: t, path, status, auth, id, type, body
        self.refuse = 0  # answer this many requests with 503 (-1: all)
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rcv.lock:
                    status = 200
                    if rcv.refuse != 0:
                        status = 503
                        if rcv.refuse > 0:
                            rcv.refuse -= 1
                    try:
                        j = json.loads(body)
                    except ValueError:
                        j = None
                    rcv.requests.append(
                        {
                            "t": time.monotonic(),
                            "path": self.path,
                            "status": status,
                            "auth": self.headers.get("Authorization"),
                            "id": self.headers.get("X-Tocsin-Event-Id"),
                            "type": self.headers.get("X-Tocsin-Event-Type"),
                            "json": j,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = self.srv.server_address[1]

    def set_refuse(self, n):
        with self.lock:
            self.refuse = n

    def got(self, pred=lambda r: True):
        with self.lock:
            return [r for r in self.requests if pred(r)]


# ---- the control channel and the machine ----------------------------------------------
class VM:
    current = None

    def __init__(self, overlay, rcv_port):
        VM.current = self
        self.overlay = overlay
        self.lock = threading.Condition()
        self.queue = []  # (id, script)
        self.results = {}
        self.boots_seen = []
        self.seq = 0
        self.proc = None
        self.console = None
        self.boots = 0
        vm = self
        files = {"new.deb": new_deb, "old.deb": old_deb}

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/file/"):
                    with open(files[self.path[6:]], "rb") as f:
                        return self.reply(200, f.read())
                m = re.match(r"/next\?boot=([0-9a-f-]+)", self.path)
                if not m:
                    return self.reply(404)
                with vm.lock:
                    if not vm.boots_seen or vm.boots_seen[-1] != m.group(1):
                        vm.boots_seen.append(m.group(1))
                        vm.lock.notify_all()
                    end = time.monotonic() + 15
                    while not vm.queue and time.monotonic() < end:
                        vm.lock.wait(end - time.monotonic())
                    if not vm.queue:
                        return self.reply(204)
                    cid, script = vm.queue.pop(0)
                self.reply(200, f"{cid}\n{script}\n".encode())

            def do_POST(self):
                m = re.match(r"/result\?id=(\d+)&rc=(\d+)", self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode(errors="replace")
                if m:
                    with vm.lock:
                        vm.results[int(m.group(1))] = (int(m.group(2)), body)
                        vm.lock.notify_all()
                self.reply(200)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        relay = os.path.join(here, "relay.py")
        self.netdev = (
            "user,id=n0,restrict=on"
            f",guestfwd=tcp:10.0.2.100:80-cmd:python3 {relay} {rcv_port}"
            f",guestfwd=tcp:10.0.2.101:80-cmd:python3 {relay} {self.srv.server_address[1]}"
        )

    def start(self):
        assert self.proc is None
        self.boots += 1
        with self.lock:
            known = len(self.boots_seen)
            self.queue.clear()
        self.console = open(os.path.join(work, f"console.{self.boots}.log"), "wb")
        self.proc = subprocess.Popen(
            [
                # -nodefaults -vga none: no floppy, CD-ROM, parallel port or VGA, whose
                # drivers udev would load at every boot (seconds each under TCG).
                # Two vCPUs: multi-threaded TCG, so the guest's boot (udev, systemd's
                # parallel units) uses both host cores; the VM step runs alone in CI.
                "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "2",
                "-nodefaults", "-vga", "none", "-display", "none", "-no-reboot",
                "-serial", "stdio", "-monitor", "none",
                "-kernel", f"{base}/vmlinuz", "-initrd", f"{base}/initrd.img",
                "-append", f"root=/dev/vda rw console=ttyS0 panic=1 quiet modprobe.blacklist={UNUSED_MODULES}",
                "-device", "virtio-rng-pci",
                "-drive", f"file={self.overlay},if=virtio,format=qcow2",
                "-netdev", self.netdev, "-device", "virtio-net-pci,netdev=n0",
            ],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT,
        )
        t0 = time.monotonic()
        with self.lock:
            while len(self.boots_seen) == known:
                if self.proc.poll() is not None or time.monotonic() - t0 > 180:
                    raise RuntimeError(f"boot {self.boots}: no harness (see {self.console.name})")
                self.lock.wait(1)
        log(f"boot {self.boots}: up in {time.monotonic() - t0:.1f} s (boot id {self.boots_seen[-1][:8]})")
        return time.monotonic() - t0

    def sh(self, script, timeout=240):
        with self.lock:
            self.seq += 1
            cid = self.seq
            self.queue.append((cid, script))
            self.lock.notify_all()
            end = time.monotonic() + timeout
            while cid not in self.results:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"machine stopped during: {script[:80]}")
                if time.monotonic() > end:
                    raise RuntimeError(f"no result in {timeout} s: {script[:80]}")
                self.lock.wait(1)
            return self.results.pop(cid)

    def ok(self, script, timeout=240):
        rc, out = self.sh(script, timeout)
        if rc != 0:
            raise RuntimeError(f"guest command failed ({rc}): {script[:200]}\n{out}")
        return out

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.console.close()

    def poweroff(self, how="poweroff"):
        with self.lock:
            self.seq += 1
            self.queue.append((self.seq, f"systemctl {how}"))
            self.lock.notify_all()
        self.wait_exit(120)

    def cut(self):
        """A power cut: SIGKILL to qemu itself (not a wrapper), mid-whatever."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.console.close()


# ---- what is checked -------------------------------------------------------------------
table = []  # (behaviour, expected, observed, ok)
failed = []


def record(what, expected, observed, ok):
    table.append((what, expected, observed, ok))
    log(f"{'ok  ' if ok else 'FAIL'} {what}: {observed}")
    if not ok:
        failed.append(what)


def wait_for(pred, timeout, step=0.5):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def config(auth):
    a = 'auth = { type = "bearer", token_file = "tocsin_rcv.token" }' if auth else ""
    return f"""[agent]
device_id = "vm"
hostname  = "auto"
interval  = "500ms"

[[rule]]
name     = "a"
metric   = "file.value"
path     = "/etc/tocsin-vm/a"
critical = "> 1"
notify   = ["rcv"]

[[rule]]
name     = "b"
metric   = "file.value"
path     = "/etc/tocsin-vm/b"
critical = "> 1"
notify   = ["rcv"]

[[rule]]
name     = "journald-gone"
metric   = "process.count"
match    = {{ name = "systemd-journal" }}
critical = "< 1"
notify   = ["rcv"]

[[rule]]
name     = "relay-down"
metric   = "tcp.up"
target   = "10.0.2.100:80"
warn     = "< 0"
notify   = ["rcv"]

[[rule]]
name     = "load-exec"
metric   = "exec.value"
command  = ["/bin/cat", "/proc/loadavg"]
warn     = "< 0"
notify   = ["rcv"]

[[webhook]]
name   = "rcv"
url    = "http://10.0.2.100/k"
format = "template"
body   = '{{"type": "${{event_type}}", "state": "${{state}}", "id": "${{event_id}}", "rule": "${{rule_id}}", "ts": ${{timestamp_ms}}, "detail": "${{content}}"}}'
events = ["alarm", "recovery", "reboot"]
retries = 1
retry_interval = "200ms"
timeout = "2s"
{a}
"""


def write_config(vm, auth=True):
    vm.ok(
        "mkdir -p /etc/tocsin-vm && cat >/etc/tocsin/tocsin.toml <<'TOML'\n"
        + config(auth)
        + "TOML\nsync"
    )


truth = {"a": False, "b": False}


def put_truth(vm, names=("a", "b")):
    cmds = [
        f"echo {2 if truth[n] else 0} >/etc/tocsin-vm/{n}.tmp && mv /etc/tocsin-vm/{n}.tmp /etc/tocsin-vm/{n}"
        for n in names
    ]
    vm.ok("mkdir -p /etc/tocsin-vm && " + " && ".join(cmds) + " && sync /etc/tocsin-vm/*")


def unit_prop(vm, p):
    return vm.ok(f"systemctl show -p {p} --value tocsin").strip()


def spooled(vm):
    return int(vm.ok(f"ls {STATE}/spool/rcv/ 2>/dev/null | grep -c '\\.ev$' || true").strip() or 0)


def delivered(rcv, pred=lambda r: True):
    return rcv.got(lambda r: r["status"] == 200 and r["path"] == "/k" and pred(r))


class section:
    """A part of the test: an error in it is recorded as a failure, and the rest runs."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, kind, e, tb):
        log(f"{self.name}: {time.monotonic() - self.t0:.1f} s")
        if e is None or not isinstance(e, Exception):
            return False
        record(self.name, "runs to the end", f"error: {str(e)[:400]}", False)
        return True


def main():
    generated, by_id, lost, dups, left = set(), {}, [], 0, "?"
    os.makedirs(work, exist_ok=True)
    overlay = os.path.join(work, "overlay.qcow2")
    if os.path.exists(overlay):
        os.remove(overlay)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", f"{base}/root.img", "-F", "raw", overlay],
        check=True,
    )
    rcv = Receiver()
    vm = VM(overlay, rcv.port)
    log(f"seed {seed} (TOCSIN_VM_SEED={seed} replays the cut moments), {cuts} power cuts")

    # ---- boot 1: the old package spools, the new one delivers -----------------------
    with section('boot 1: the old package spools, the new one delivers'):
        vm.start()
        log("boot: " + vm.ok("systemd-analyze | head -1; systemd-analyze blame | head -5").replace("\n", "; "))
        put_truth(vm)
        vm.ok("curl -sf -o /root/old.deb http://10.0.2.101/file/old.deb && curl -sf -o /root/new.deb http://10.0.2.101/file/new.deb")
        vm.ok("apt-get install -y -q /root/old.deb >/root/apt-old.log 2>&1 || { cat /root/apt-old.log; exit 1; }")
        old_ver = vm.ok("dpkg-query -W -f '${Version}' tocsin")
        enabled = vm.sh("systemctl is-enabled tocsin")[1].strip()
        active = vm.sh("systemctl is-active tocsin")[1].strip()
        record("install: neither enabled nor started", "disabled, inactive", f"{enabled}, {active}",
               enabled == "disabled" and active == "inactive")
        write_config(vm, auth=False)
        rcv.set_refuse(-1)  # the receiver is down
        vm.ok("systemctl enable --now tocsin")
        truth["a"] = True
        put_truth(vm, ["a"])
        n = wait_for(lambda: spooled(vm) >= 1, 60)
        truth["b"] = True
        put_truth(vm, ["b"])
        n = wait_for(lambda: spooled(vm) >= 2 and spooled(vm), 60)
        refused_ids = {r["id"] for r in rcv.got(lambda r: r["status"] == 503 and r["json"] and r["json"]["type"] == "alarm")}
        pid_old = unit_prop(vm, "MainPID")
        log(f"old version {old_ver}: {n} events spooled with the receiver down ({len(refused_ids)} alarm ids refused)")
        # The test rewrote /etc/tocsin/tocsin.toml and the new package ships another
        # version of it: dpkg's conffile question, which apt asks on a terminal. Unattended,
        # as a fleet upgrades, the operator's file is kept (--force-confold).
        vm.ok("apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
              " /root/new.deb >/root/apt-new.log 2>&1 || { cat /root/apt-new.log; exit 1; }")
        new_ver = vm.ok("dpkg-query -W -f '${Version}' tocsin")
        pid_new = unit_prop(vm, "MainPID")
        record("upgrade restarts the running agent", f"{old_ver} -> new, new PID",
               f"-> {new_ver}, PID {pid_old} -> {pid_new}", new_ver != old_ver and pid_new not in ("0", pid_old))
        rcv.set_refuse(0)
        got = wait_for(lambda: refused_ids <= {r["id"] for r in delivered(rcv)}, 90)
        record("upgrade: the old version's spool is delivered by the new one",
               f"{len(refused_ids)} spooled alarm ids delivered",
               f"{len(refused_ids & {r['id'] for r in delivered(rcv)})} of {len(refused_ids)}; spool now {spooled(vm)}",
               bool(got) and len(refused_ids) >= 2)

    # ---- the full config: LoadCredential -----------------------------------------------
    with section('the full config: LoadCredential'):
        vm.ok(f"install -d -m 0700 /etc/tocsin/credentials && printf %s {TOKEN} >/etc/tocsin/credentials/rcv.token && chmod 0600 /etc/tocsin/credentials/rcv.token")
        write_config(vm, auth=True)

    # ---- Type=notify, StatusText, start returns after the start line -------------------
    with section('Type=notify, StatusText, start returns after the start line'):
        vm.ok("systemctl stop tocsin")
        out = vm.ok(
            "systemctl start tocsin; echo state=$(systemctl show -p ActiveState --value tocsin);"
            " inv=$(systemctl show -p InvocationID --value tocsin);"
            " for i in $(seq 50); do journalctl -q -o json _SYSTEMD_INVOCATION_ID=$inv -u tocsin"
            " | grep -q '\"device vm' && break; sleep 0.1; done;"
            " journalctl -q -o json _SYSTEMD_INVOCATION_ID=$inv -u tocsin | grep '\"device vm' | head -1;"
            " systemctl show -p Type -p StatusText -p ActiveEnterTimestampMonotonic -p ExecMainStartTimestampMonotonic tocsin"
        )
        props = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and not l.startswith("{"))
        line = next((json.loads(l) for l in out.splitlines() if l.startswith("{")), None)
        record("systemctl show: Type", "notify", props.get("Type"), props.get("Type") == "notify")
        record("StatusText is the agent's status line", "N rules, 1 webhooks, every 500 ms",
               props.get("StatusText"), props.get("StatusText") == "5 rules, 1 webhooks, every 500 ms")
        ready_ok = props.get("state") == "active" and line is not None
        gap = ""
        if line:
            gap = (int(props["ActiveEnterTimestampMonotonic"]) - int(line["__MONOTONIC_TIMESTAMP"])) / 1e6
            gap = f"; start line logged {gap:+.3f} s before READY=1 was taken (journald's receive time)"
        record("systemctl start returns once READY=1 came, after the start line",
               "active on return; the start line in that invocation's journal",
               f"ActiveState={props.get('state')}, line {'found' if line else 'missing'}{gap}", ready_ok)

    # ---- LoadCredential: the token reaches the receiver, no journal line holds it -------
    with section('LoadCredential: the token reaches the receiver, no journal line holds it'):
        truth["a"] = False
        put_truth(vm, ["a"])
        ok = wait_for(lambda: delivered(rcv, lambda r: r["auth"] == f"Bearer {TOKEN}"), 30)
        leaks = vm.ok(f"journalctl -o export --no-pager | grep -c {TOKEN} || true").strip()
        record("LoadCredential: bearer token from /etc/tocsin/credentials",
               "Authorization: Bearer <token> at the receiver; 0 journal entries with it",
               f"{len(delivered(rcv, lambda r: r['auth'] == f'Bearer {TOKEN}'))} requests with it; journal entries holding it: {leaks}",
               bool(ok) and leaks == "0")

    # ---- reload: same PID; a bad config is rejected and logged -------------------------
    with section('reload: same PID; a bad config is rejected and logged'):
        pid = unit_prop(vm, "MainPID")
        vm.ok("sed -i 's/interval  = \"500ms\"/interval  = \"600ms\"/' /etc/tocsin/tocsin.toml && systemctl reload tocsin")
        out1 = wait_for(lambda: "reloaded /etc/tocsin/tocsin.toml" in vm.ok("journalctl -u tocsin -o cat -n 50"), 20)
        st = unit_prop(vm, "StatusText")
        vm.ok("cp /etc/tocsin/tocsin.toml /root/good.toml && echo 'bogus = 1' >>/etc/tocsin/tocsin.toml && systemctl reload tocsin")
        rej = wait_for(lambda: "rejected" in vm.ok("journalctl -u tocsin -o cat -n 50"), 20)
        j = vm.ok("journalctl -u tocsin -o cat -p err -n 20")
        pid2 = unit_prop(vm, "MainPID")
        act = unit_prop(vm, "ActiveState")
        vm.ok("cp /root/good.toml /etc/tocsin/tocsin.toml && systemctl reload tocsin")
        diag = re.search(r"tocsin.toml:\d+:\d+: [^\n]*", j)
        diag = diag.group(0)[:70] if diag else "no FILE:LINE:COL line"
        record("systemctl reload: SIGHUP, same PID, new config", "same PID; 'reloaded' logged; StatusText every 600 ms",
               f"PID {pid} -> {pid2}; {st}", bool(out1) and pid == pid2 and "600 ms" in st)
        record("reload of a bad config: rejected, logged, still running",
               "FILE:LINE:COL error + 'rejected' at priority err; same PID, active",
               f"{'rejected logged' if rej else 'nothing logged'}; "
               f"{diag}; {act}",
               bool(rej) and re.search(r"tocsin.toml:\d+:\d+:", j) is not None and act == "active" and pid == pid2)

    # ---- security score and every metric family under the real sandbox -----------------
    with section('security score and every metric family under the real sandbox'):
        out = vm.ok("systemd-analyze security tocsin 2>&1 | tail -1")
        m = re.search(r"Overall exposure level for tocsin.service: ([0-9.]+)", out)
        score = float(m.group(1)) if m else 99
        record("systemd-analyze security tocsin (live unit)", "<= 2.0", out.strip(), score <= 2.0)
        probe = (
            "sed -e 's#^ExecStart=.*#ExecStart=/usr/bin/tocsin once --metrics -c /etc/tocsin/tocsin.toml#'"
            " -e 's#^Type=notify#Type=oneshot#' -e '/^NotifyAccess=/d' -e '/^WatchdogSec=/d'"
            " -e '/^Restart=/d' -e '/^ExecReload=/d' -e '/^\\[Install\\]/,$d'"
        # Its own state and runtime directories: sharing the agent's would hand them to
        # another dynamic user, and remove /run/tocsin when the probe stops.
        " -e 's#^StateDirectory=tocsin#StateDirectory=tocsin-probe#'"
        " -e 's#^RuntimeDirectory=tocsin#RuntimeDirectory=tocsin-probe#'"
            " /lib/systemd/system/tocsin.service >/run/systemd/system/tocsin-probe.service"
            " && systemctl daemon-reload && systemctl start tocsin-probe"
            " && journalctl -u tocsin-probe -o cat --no-pager"
        )
        boxed = vm.ok(probe)
        plain = vm.ok("d=$(mktemp -d) && cp /etc/tocsin/credentials/rcv.token $d/tocsin_rcv.token &&"
                      " CREDENTIALS_DIRECTORY=$d /usr/bin/tocsin once --metrics -c /etc/tocsin/tocsin.toml 2>&1")

        def families(t):
            return {l.split()[0] for l in t.splitlines() if re.match(r"^[a-z]+\.[a-z0-9_]+\s", l)}

        fb, fp = families(boxed), families(plain)
        record("every metric family samples under the unit's sandbox",
               f"the {len(fp)} families root sees (once --metrics)",
               f"{len(fb)} under the sandbox{'; missing: ' + ' '.join(sorted(fp - fb)) if fp - fb else ''}: {' '.join(sorted(fb))}",
               fp <= fb and len(fp) >= 12)

    # ---- watchdog ------------------------------------------------------------------------
    with section('watchdog'):
        vm.ok("mkdir -p /etc/systemd/system/tocsin.service.d && printf '[Service]\\nWatchdogSec=5s\\nTimeoutAbortSec=5s\\n'"
              " >/etc/systemd/system/tocsin.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart tocsin")
        w = vm.ok(
            "pid=$(systemctl show -p MainPID --value tocsin); n0=$(systemctl show -p NRestarts --value tocsin);"
            " t0=$(cut -d' ' -f1 /proc/uptime); kill -STOP $pid;"
            " for i in $(seq 120); do p=$(systemctl show -p MainPID --value tocsin);"
            "  s=$(systemctl show -p ActiveState --value tocsin);"
            "  [ \"$p\" != 0 ] && [ \"$p\" != $pid ] && [ \"$s\" = active ] && break; sleep 0.25; done;"
            " t1=$(systemctl show -p ActiveEnterTimestampMonotonic --value tocsin);"
            " echo old=$pid new=$p restarts=$n0..$(systemctl show -p NRestarts --value tocsin) secs=$(awk \"BEGIN{print $t1/1e6-$t0}\");"
            " journalctl -u tocsin -o cat -n 40 | grep -ci 'watchdog timeout' || true",
            timeout=120,
        )
        wm = re.search(r"old=(\d+) new=(\d+) restarts=(\d+)\.\.(\d+) secs=([0-9.]+)", w)
        bound = 5 + 5 + 5
        if wm:
            secs = float(wm.group(5))
            wd_logged = w.strip().splitlines()[-1] != "0"
            record("watchdog: SIGSTOPped agent killed and restarted",
                   f"new PID, NRestarts +1, 'Watchdog timeout' logged, active again within WatchdogSec 5 + TimeoutAbortSec 5 + RestartSec 5 = {bound} s of the SIGSTOP (systemd's own timestamps)",
                   f"PID {wm.group(1)} -> {wm.group(2)}, NRestarts {wm.group(3)} -> {wm.group(4)}, {secs:.1f} s, watchdog timeout logged: {wd_logged}",
                   wm.group(1) != wm.group(2) and int(wm.group(4)) == int(wm.group(3)) + 1 and wd_logged and secs <= bound + 1)
        else:
            record("watchdog: SIGSTOPped agent killed and restarted", "restart", w.strip()[-200:], False)
        vm.ok("rm -r /etc/systemd/system/tocsin.service.d && systemctl daemon-reload && systemctl restart tocsin")

    # ---- persistence across restart: spool and firing state ------------------------------
    with section('persistence across restart: spool and firing state'):
        rcv.set_refuse(-1)
        truth["b"] = False  # b recovers while the receiver is down: the recovery spools
        put_truth(vm, ["b"])
        wait_for(lambda: spooled(vm) >= 1, 60)
        truth["a"] = True  # a fires: firing state
        put_truth(vm, ["a"])
        wait_for(lambda: spooled(vm) >= 2, 60)
        files = lambda: vm.ok(f"cd {STATE} && ls spool/rcv/ | grep '\\.ev$' | sort; ls firing.state boot 2>&1").split()
        before = files()
        a_alarms = lambda: {r["id"] for r in delivered(rcv, lambda r: r["json"] and r["json"]["rule"] == "a" and r["json"]["type"] == "alarm")}
        alarms_a = len(a_alarms())
        vm.ok("systemctl restart tocsin")
        after = files()
        record("StateDirectory with DynamicUser: spool + firing state across systemctl restart",
               "same spool files, firing.state kept", f"{len([f for f in before if f.endswith('.ev')])} spooled before, "
               f"{len([f for f in after if f.endswith('.ev')])} after; firing.state {'kept' if 'firing.state' in after else 'missing'}",
               set(f for f in before if f.endswith(".ev")) <= set(after) and "firing.state" in after)
        owner = vm.ok(f"stat -c '%U %a' {STATE} && readlink /var/lib/tocsin")
        log(f"state dir: {owner.split()}")

    # ---- reboot: persistence, the reboot warning's priority ------------------------------
    with section("reboot: persistence, the reboot warning's priority"):
        vm.poweroff("reboot")
        vm.start()
        wait_for(lambda: unit_prop(vm, "ActiveState") == "active", 60)
        after_boot = files()
        record("StateDirectory: spool + firing state across a VM reboot",
               "same spool files and firing.state after the reboot (receiver still down)",
               f"{len([f for f in after_boot if f.endswith('.ev')])} spooled, firing.state {'kept' if 'firing.state' in after_boot else 'missing'}",
               set(f for f in before if f.endswith(".ev")) <= set(after_boot) and "firing.state" in after_boot)
        warn = vm.ok("journalctl -b -u tocsin -p warning -o cat --no-pager")
        info = vm.ok("journalctl -b -u tocsin -p info -o cat --no-pager")
        record("journald priorities: -p warning shows the warning, not the info line",
               "'reboot detected' (warn) shown; 'device vm …' (info) only under -p info",
               f"warning: {'reboot detected' in warn}; info line under -p warning: {'device vm' in warn}; under -p info: {'device vm' in info}",
               "reboot detected" in warn and "device vm" not in warn and "device vm" in info)
        rcv.set_refuse(0)
        drained = wait_for(lambda: spooled(vm) == 0, 90)
        again = len(a_alarms())
        record("after the reboot: the spool drains, the firing series raises no second alarm",
               "spool 0; one new alarm id of 'a' (the spooled one), none raised again",
               f"spool {spooled(vm)}; distinct alarm ids of 'a' delivered {again} (before the restart: {alarms_a})",
               drained is not False and again == alarms_a + 1 and spooled(vm) == 0)

    # ---- power cuts ----------------------------------------------------------------------
    with section('power cuts'):
        cut_rows = []
        for c in range(1, cuts + 1):
            boot_id = vm.boots_seen[-1]
            put_truth(vm)
            rcv.set_refuse(0)
            # This boot's reboot event first (the check: one per cut), then the storm.
            if not wait_for(lambda: delivered(rcv, lambda r: r["json"] and r["json"]["type"] == "reboot"
                                              and boot_id in (r["json"]["detail"] or "")), 90):
                record(f"power cut {c}: reboot event for boot {boot_id[:8]}", "delivered", "not delivered", False)
            steps = rng.randint(2, 6)
            for _ in range(steps):
                if rng.random() < 0.4:
                    rcv.set_refuse(rng.choice([-1, rng.randint(1, 6)]))
                n = rng.choice(["a", "b"])
                truth[n] = not truth[n]
                put_truth(vm, [n])
                time.sleep(rng.uniform(0, 1.5))
            time.sleep(rng.uniform(0, 2.0))
            sp = spooled(vm) if rng.random() < 0.3 else None
            vm.cut()
            cut_rows.append((c, steps, sp))
            log(f"power cut {c}: after {steps} flips (truth {truth})")
            # Sometimes the world changes while the power is off: applied at the next boot.
            if rng.random() < 0.3:
                n = rng.choice(["a", "b"])
                truth[n] = not truth[n]
            rcv.set_refuse(rng.choice([0, 0, 3]))
            vm.start()

    # ---- the end: healthy receiver, stable truth; the guarantees -------------------------
    with section('the end: healthy receiver, stable truth; the guarantees'):
        boot_id = vm.boots_seen[-1]
        put_truth(vm)
        rcv.set_refuse(0)
        wait_for(lambda: delivered(rcv, lambda r: r["json"] and r["json"]["type"] == "reboot"
                                   and boot_id in (r["json"]["detail"] or "")), 90)
        drained = wait_for(lambda: spooled(vm) == 0, 120)

        def view():
            last = {}
            for r in delivered(rcv, lambda r: r["json"] and r["json"]["rule"] in ("a", "b")):
                j = r["json"]
                k = (j["ts"], j["id"])
                if j["rule"] not in last or last[j["rule"]][0] < k:
                    last[j["rule"]] = (k, j["state"])
            return {n: last.get(n, (None, "OK"))[1] for n in ("a", "b")}

        want = {n: "ALERT" if truth[n] else "OK" for n in ("a", "b")}
        converged = wait_for(lambda: view() == want, 60)
        left = spooled(vm)
        bad = vm.ok(f"find {STATE} -name '*.bad' | wc -l").strip()
        jids = set(UUID.findall(vm.ok("journalctl -u tocsin -o cat --no-pager | grep -E 'alarm|recovery' || true")))
        reqs = rcv.got(lambda r: r["path"] == "/k" and r["json"] and r["json"]["rule"] in ("a", "b"))
        ok_reqs = [r for r in reqs if r["status"] == 200]
        by_id = {}
        dups = 0
        mismatched = 0
        for r in ok_reqs:
            if r["id"] in by_id:
                dups += 1
                if by_id[r["id"]] != r["json"]:
                    mismatched += 1
            else:
                by_id[r["id"]] = r["json"]
        refused_ids = {r["id"] for r in reqs if r["status"] != 200}
        generated = set(by_id) | refused_ids | jids
        lost = [i for i in (refused_ids | jids) if i not in by_id]
        reboots = {m.group(1) for r in delivered(rcv, lambda r: r["json"] and r["json"]["type"] == "reboot")
                   for m in [re.search(r"boot id ([0-9a-f-]+)", r["json"]["detail"] or "")] if m}
        missing_reboots = [b for b in vm.boots_seen[1:] if b not in reboots]
        record(f"power cuts: {cuts} SIGKILLs of qemu, then a boot on the same disk",
               "every event delivered, duplicates only of the same event, spool drains, no *.bad, "
               "the receiver's view = the truth, a reboot event per boot",
               f"generated {len(generated)}, delivered {len(by_id)} ({len(ok_reqs)} 2xx), duplicates by id {dups} "
               f"({mismatched} not the same event), spooled at the end {left}, lost {len(lost)}, *.bad {bad}, "
               f"view {view()} vs truth {want}, boots without a reboot event {len(missing_reboots)}",
               not lost and mismatched == 0 and left == 0 and bad == "0" and bool(converged) and not missing_reboots)

    # ---- apt remove keeps, apt purge removes ---------------------------------------------
    with section('apt remove keeps, apt purge removes'):
        vm.ok("apt-get remove -y -q tocsin >/dev/null 2>&1")
        kept = vm.sh(f"test -f /etc/tocsin/tocsin.toml && test -f /etc/tocsin/credentials/rcv.token && test -f {STATE}/boot && ! systemctl is-active -q tocsin")[0]
        vm.ok("apt-get purge -y -q tocsin >/dev/null 2>&1")
        gone = vm.sh(f"! test -e /etc/tocsin && ! test -e {STATE} && ! test -e /var/lib/tocsin && ! test -e /usr/bin/tocsin")[0]
        record("apt remove keeps /etc/tocsin and the state; apt purge removes them",
               "kept after remove; gone after purge", f"remove: {'kept' if kept == 0 else 'not kept'}; purge: {'gone' if gone == 0 else 'left behind'}",
               kept == 0 and gone == 0)
        vm.poweroff()

    # ---- the filesystem after all that ---------------------------------------------------
    with section('the filesystem after all that'):
        raw = os.path.join(work, "final.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", overlay, raw], check=True)
        fsck = subprocess.run(["e2fsck", "-fn", raw], capture_output=True, text=True)
        os.remove(raw)
        record("e2fsck -fn on the disk after the cuts (overlay converted to raw)", "exit 0, clean",
               f"exit {fsck.returncode}; {fsck.stdout.strip().splitlines()[-1] if fsck.stdout.strip() else fsck.stderr.strip()[:100]}",
               fsck.returncode == 0)

    total = time.monotonic() - t_start
    with open(os.path.join(work, "report.md"), "w") as f:
        f.write(f"VM test, seed {seed}, {vm.boots} boots, {total:.0f} s\n\n")
        f.write("| behaviour | expected | observed | |\n|---|---|---|---|\n")
        for what, exp, obs, ok in table:
            f.write(f"| {what} | {exp} | {obs} | {'ok' if ok else 'FAIL'} |\n")
        f.write("\n| cuts | events generated | delivered (distinct ids) | spooled at the end | lost | duplicates by id |\n|---:|---:|---:|---:|---:|---:|\n")
        f.write(f"| {cuts} | {len(generated)} | {len(by_id)} | {left} | {len(lost)} | {dups} |\n")
    print(open(os.path.join(work, "report.md")).read())
    log(f"{len(table) - len(failed)} of {len(table)} checks passed in {total:.0f} s")
    return 1 if failed else 0


def _no_orphan():
    # Whatever happens, no qemu outlives the test.
    if VM.current and VM.current.proc is not None and VM.current.proc.poll() is None:
        VM.current.proc.kill()


if __name__ == "__main__":
    import atexit

    atexit.register(_no_orphan)
    try:
        sys.exit(main())
    except Exception as e:  # a VM test that could not run fails loudly
        log(f"FAIL: {e}")
        if VM.current and VM.current.proc is not None:
            try:
                print(VM.current.sh("journalctl -u tocsin -n 40 --no-pager", 60)[1])
            except Exception:
                pass
            VM.current.cut()
        for what, exp, obs, ok in table:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}: {obs}")
        sys.exit(1)
