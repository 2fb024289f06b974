#!/usr/bin/env python3
"""End to end: `rps exo ... -o jsonl` and pypsrp against the same fake Exchange endpoint.

For each N: starts `rps serve --fake-exchange --mailboxes N --no-redirect` (with a Basic user
for pypsrp), runs `rps exo --tenant-id T --uri URL --insecure-http --access-token-file F -o
jsonl -- Get-Mailbox -ResultSize Unlimited > /dev/null` under /usr/bin/time -v (wall time,
peak RSS, CPU), samples the server's CPU time from /proc over the same run (is the fake
keeping up?), checks the object count in a separate run for N <= --verify-max, and runs
pypsrp (bench/pypsrp_client.py, plain Basic at the fake's /PowerShell URL, configuration
Microsoft.Exchange) for N <= --pypsrp-max. Also times the fake with a trivial consumer (the
fake_exchange example's `bench` mode: rps_session without rendering, in one process).

Writes $RPS_BENCH_RESULTS/e2e.json. Stdlib only; pypsrp runs in the venv's python.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.environ.get("RPS_BENCH_RESULTS", os.path.join(ROOT, "target", "bench-results"))
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def parse_time_v(text):
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["maxrss_kib"] = int(m.group(1))
    for key, name in (("user_s", "User time (seconds)"), ("sys_s", "System time (seconds)")):
        m = re.search(re.escape(name) + r": ([\d.]+)", text)
        if m:
            out[key] = float(m.group(1))
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit"] = int(m.group(1))
    return out


class Fake:
    def __init__(self, rps, n, tmp, pw):
        self.token = os.path.join(tmp, "token")
        self.err = open(os.path.join(tmp, "serve.err"), "w+")
        env = dict(os.environ, RPS_BENCH_PW=pw)
        self.p = subprocess.Popen(
            [rps, "serve", "--fake-exchange", "--mailboxes", str(n), "--no-redirect",
             "--token-file", self.token, "--basic-user", "bench", "--basic-password-env", "RPS_BENCH_PW"],
            stdout=subprocess.PIPE, stderr=self.err, text=True, env=env)
        self.url = self.p.stdout.readline().strip()
        if not self.url:
            raise SystemExit("rps serve printed no URL")
        self.tenant = None
        for _ in range(200):
            self.err.seek(0)
            m = re.search(r"for tenant (\S+)", self.err.read())
            if m and os.path.exists(self.token) and os.path.getsize(self.token) > 0:
                self.tenant = m.group(1)
                break
            time.sleep(0.05)
        if not self.tenant:
            raise SystemExit("rps serve did not say its tenant")
        m = re.match(r"(https?://[^/]+)", self.url)
        self.basic_url = m.group(1) + "/PowerShell"

    def cpu_s(self):
        return proc_cpu_s(self.p.pid)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.err.close()


def run_rps(rps, fake, stdout):
    cmd = ["/usr/bin/time", "-v", rps, "exo", "--tenant-id", fake.tenant, "--uri", fake.url,
           "--insecure-http", "--access-token-file", fake.token, "-o", "jsonl", "--",
           "Get-Mailbox", "-ResultSize", "Unlimited"]
    cpu0 = fake.cpu_s()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    server_cpu = fake.cpu_s() - cpu0
    rec = parse_time_v(p.stderr)
    if p.returncode != 0:
        raise SystemExit("rps exo failed:\n" + p.stderr[-3000:])
    rec.update(wall_s=wall, server_cpu_s=server_cpu)
    return rec


def run_pypsrp(python, fake, pw):
    cmd = ["/usr/bin/time", "-v", python, os.path.join(ROOT, "bench", "pypsrp_client.py"),
           fake.basic_url, "bench"]
    cpu0 = fake.cpu_s()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RPS_BENCH_PW=pw))
    wall = time.perf_counter() - t0
    server_cpu = fake.cpu_s() - cpu0
    if p.returncode != 0:
        raise SystemExit("pypsrp failed:\n" + (p.stdout + p.stderr)[-3000:])
    rec = parse_time_v(p.stderr)
    rec.update(json.loads(p.stdout.strip().splitlines()[-1]))
    rec.update(wall_s=wall, server_cpu_s=server_cpu)
    return rec


def trivial_consumer(example, n):
    """The fake and rps_session in one process, output counted and dropped."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", example, "bench", str(n)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"error": (p.stdout + p.stderr)[-500:]}
    rec = parse_time_v(p.stderr)
    rec.update(wall_s=wall, line=p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "")
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1000,10000,100000")
    ap.add_argument("--reps", type=int, default=3, help="rps runs per N (best and median kept)")
    ap.add_argument("--reps-large", type=int, default=2, help="rps runs for N > 10000")
    ap.add_argument("--pypsrp-max", type=int, default=10000, help="largest N pypsrp is run for")
    ap.add_argument("--verify-max", type=int, default=100000, help="largest N whose output is counted")
    ap.add_argument("--rps", default=os.path.join(ROOT, "target", "release", "rps"))
    ap.add_argument("--fake-example", default=os.path.join(ROOT, "target", "release", "examples", "fake_exchange"))
    ap.add_argument("--python", default=os.path.join(ROOT, "target", "bench-venv", "bin", "python"))
    ap.add_argument("--out", default=os.path.join(RESULTS, "e2e.json"))
    args = ap.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    pw = "bench-%d" % os.getpid()
    records = []
    with tempfile.TemporaryDirectory(prefix="rps-e2e-") as tmp:
        for n in [int(x) for x in args.n.split(",")]:
            fake = Fake(args.rps, n, tmp, pw)
            try:
                rec = {"n": n}
                if n <= args.verify_max:
                    out_path = os.path.join(tmp, "out.jsonl")
                    with open(out_path, "w") as f:
                        run_rps(args.rps, fake, f)
                    count, first = 0, None
                    with open(out_path, "rb") as f:
                        for line in f:
                            if first is None:
                                first = json.loads(line)
                            count += 1
                    os.unlink(out_path)
                    if count != n or not isinstance(first, dict) or "Alias" not in first:
                        raise SystemExit("rps exo wrote %d objects for N=%d (first: %r)" % (count, n, first))
                    rec["rps_objects_checked"] = count
                runs = []
                for _ in range(args.reps if n <= 10000 else args.reps_large):
                    with open(os.devnull, "w") as devnull:
                        runs.append(run_rps(args.rps, fake, devnull))
                    print("rps    N=%-6d wall %.2fs  peak RSS %.1f MiB  server CPU %.2fs" % (
                        n, runs[-1]["wall_s"], runs[-1].get("maxrss_kib", 0) / 1024, runs[-1]["server_cpu_s"]),
                        flush=True)
                rec["rps"] = runs
                if n <= args.pypsrp_max and os.path.exists(args.python):
                    py = run_pypsrp(args.python, fake, pw)
                    if py["objects"] != n:
                        raise SystemExit("pypsrp got %d objects for N=%d" % (py["objects"], n))
                    print("pypsrp N=%-6d wall %.2fs  peak RSS %.1f MiB  server CPU %.2fs" % (
                        n, py["wall_s"], py.get("maxrss_kib", 0) / 1024, py["server_cpu_s"]), flush=True)
                    rec["pypsrp"] = py
                else:
                    rec["pypsrp"] = None
            finally:
                fake.stop()
            if os.path.exists(args.fake_example):
                rec["fake_trivial_consumer"] = trivial_consumer(args.fake_example, n)
                print("fake+rps_session in one process N=%-6d wall %.2fs  %s" % (
                    n, rec["fake_trivial_consumer"].get("wall_s", 0), rec["fake_trivial_consumer"].get("line", "")),
                    flush=True)
            records.append(rec)
            with open(args.out, "w") as f:
                json.dump({"results": records}, f, indent=2)
                f.write("\n")
    print("written", args.out)


if __name__ == "__main__":
    sys.exit(main())
