#!/usr/bin/env python3
"""Runs the whole test suite: every test binary of `cargo test --release`, side by side
where that is safe, and prints a per-binary timing table (slowest first) at the end.

Plan (2 cores): two binaries at a time, but at most one from the `heavy` group
(.ci/test-groups: binaries that load the speech models or run `tingshuo serve`, whose
Whisper/TTS work takes a core or two). The light binaries (SIP against Kamailio/baresip,
RTP, store, dialogue logic, property tests) run beside the heavy one. A binary not
listed in .ci/test-groups counts as heavy until someone classifies it. Every binary
uses only its own free ports and temp dirs (tests/support), so any two can run together;
the groups only keep the CPU-bound ones from starving each other.

Environment: TEST_JOBS (binaries at once, default 2), TEST_HEAVY_JOBS (heavy ones at
once, default 1), TEST_TIMEOUT_S (per binary, default 1500), TEST_ONLY (comma-separated
binary names to run). Logs: target/test-logs/NAME.log; the table also goes to
target/test-logs/times.txt.
"""

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGS = os.path.join(ROOT, "target", "test-logs")


def groups():
    """NAME -> (group, expected seconds) from .ci/test-groups."""
    out = {}
    with open(os.path.join(ROOT, ".ci", "test-groups")) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) >= 2:
                out[line[1]] = (line[0], float(line[2]) if len(line) > 2 else 60.0)
    return out


def binaries():
    """(name, executable) for every test binary, built first (warm: seconds)."""
    cmd = ["cargo", "test", "--release", "--locked", "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        sys.exit("error: building the tests failed (see above)")
    out = []
    for line in proc.stdout.decode().splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") != "compiler-artifact" or not m.get("executable"):
            continue
        if not m.get("profile", {}).get("test"):
            continue
        kind = m["target"]["kind"][0]
        name = m["target"]["name"]
        if kind in ("lib", "rlib"):
            name = "lib"  # the unit tests in src/
        elif kind == "bin":
            name = f"bin-{name}"
        out.append((name, m["executable"]))
    return out


def main():
    jobs = int(os.environ.get("TEST_JOBS", "2"))
    heavy_jobs = int(os.environ.get("TEST_HEAVY_JOBS", "1"))
    timeout = float(os.environ.get("TEST_TIMEOUT_S", "1500"))
    only = {n for n in os.environ.get("TEST_ONLY", "").split(",") if n}
    os.makedirs(LOGS, exist_ok=True)
    known = groups()
    todo = []
    for name, exe in binaries():
        if only and name not in only:
            continue
        group, expect = known.get(name, ("heavy", 600.0))
        if name not in known:
            print(f"note: {name} is not in .ci/test-groups; it runs as heavy", flush=True)
        todo.append({"name": name, "cmd": [exe], "group": group, "expect": expect})
    if not only or "doctests" in only:
        todo.append({"name": "doctests", "cmd": ["cargo", "test", "--release", "--locked", "--doc"],
                     "group": "light", "expect": 5.0})
    # Longest first, so the last ones to finish are short.
    todo.sort(key=lambda t: -t["expect"])
    running, done = [], []
    t_start = time.monotonic()
    print(f"running {len(todo)} test binaries, {jobs} at a time, at most {heavy_jobs} heavy", flush=True)
    while todo or running:
        heavy_now = sum(1 for r in running if r["group"] == "heavy")
        while len(running) < jobs:
            pick = next((t for t in todo if t["group"] != "heavy" or heavy_now < heavy_jobs), None)
            if pick is None:
                break
            todo.remove(pick)
            log = open(os.path.join(LOGS, pick["name"] + ".log"), "wb")
            pick["log"] = log.name
            pick["t0"] = time.monotonic()
            pick["proc"] = subprocess.Popen(pick["cmd"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            log.close()
            if pick["group"] == "heavy":
                heavy_now += 1
            running.append(pick)
            print(f"  start {pick['name']} ({pick['group']})", flush=True)
        time.sleep(0.2)
        for r in list(running):
            rc = r["proc"].poll()
            elapsed = time.monotonic() - r["t0"]
            if rc is None and elapsed > timeout:
                os.killpg(r["proc"].pid, signal.SIGKILL)
                r["proc"].wait()
                rc = "timeout"
            if rc is None:
                continue
            r["secs"] = elapsed
            r["ok"] = rc == 0
            r["rc"] = rc
            running.remove(r)
            done.append(r)
            print(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['name']} {elapsed:.1f} s", flush=True)
    wall = time.monotonic() - t_start
    failed = [d for d in done if not d["ok"]]
    for d in failed:
        with open(d["log"], errors="replace") as f:
            lines = f.read().splitlines()
        print(f"\n===== {d['name']} failed (exit {d['rc']}); last 200 lines of {d['log']} =====")
        print("\n".join(lines[-200:]))
    table = [f"{'test binary':<36} {'group':<6} {'seconds':>8}  result"]
    for d in sorted(done, key=lambda d: -d["secs"]):
        table.append(f"{d['name']:<36} {d['group']:<6} {d['secs']:>8.1f}  {'ok' if d['ok'] else 'FAILED'}")
    table.append(f"{'sum of binaries':<36} {'':<6} {sum(d['secs'] for d in done):>8.1f}")
    table.append(f"{'wall clock (tests)':<36} {'':<6} {wall:>8.1f}")
    text = "\n".join(table)
    with open(os.path.join(LOGS, "times.txt"), "w") as f:
        f.write(text + "\n")
    print("\nper test binary, slowest first:\n" + text, flush=True)
    if failed:
        print(f"\n{len(failed)} test binaries failed: {', '.join(d['name'] for d in failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
