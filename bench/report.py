#!/usr/bin/env python3
"""Prints the comparison table from the JSON results of one bench/compare.sh run.

Reads $RPS_BENCH_RESULTS/{rps,psrpcore,pypsrp,e2e}.json (whichever exist) and prints
Markdown: the micro benchmarks with their ratios and targets, then the end-to-end runs.
"""

import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.environ.get("RPS_BENCH_RESULTS", os.path.join(ROOT, "target", "bench-results"))


def load(name):
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f).get("results", [])


def index(records):
    return {(r["case"], r["n"]): r for r in records if "min_s" in r}


def machine():
    model, cores = "?", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return "%s, %s cores, %s, load average %.1f at report time" % (model, cores, platform.release(), load1)


def verdict(value, target):
    return "met" if value >= target else "**missed**"


def main():
    rps, core, py = index(load("rps")), index(load("psrpcore")), index(load("pypsrp"))
    e2e = load("e2e")
    print("Machine: " + machine())
    print()
    print("| stage | N | rps best (median) | floor / peer | ratio | target | |")
    print("|---|---|---|---|---|---|---|")
    ns = sorted({n for (_, n) in rps})

    def ops(r):
        return "%.0f (%.0f) obj/s" % (r["objects_per_s_best"], r["objects_per_s_median"])

    def mbs(r):
        return "%.0f MB/s" % (r["bytes_in"] / r["min_s"] / 1e6)

    for n in ns:
        dec, tok = rps.get(("deserialize_clixml", n)), rps.get(("tokenize", n))
        if dec and tok:
            ratio = tok["min_s"] / dec["min_s"]
            print("| CLIXML decode vs quick-xml tokenizer | %d | %s, %s | tokenizer %s | %.0f%% | >= 35%% | %s |" % (
                n, ops(dec), mbs(dec), mbs(tok), 100 * ratio, verdict(ratio, 0.35)))
        for peer_name, peer, case in (("psrpcore", core, "deserialize_clixml"), ("pypsrp", py, "deserialize_clixml")):
            p = peer.get((case, n))
            if dec and p:
                ratio = p["min_s"] / dec["min_s"]
                target = " >= 200x" if peer_name == "psrpcore" else "-"
                v = verdict(ratio, 200) if peer_name == "psrpcore" else ""
                print("| CLIXML decode vs %s | %d | %s | %s %.0f obj/s | %.0fx | %s | %s |" % (
                    peer_name, n, ops(dec), peer_name, p["objects_per_s_best"], ratio, target, v))
        enc = rps.get(("serialize_clixml", n))
        for peer_name, peer, case in (("psrpcore", core, "serialize_clixml"), ("pypsrp", py, "serialize")):
            p = peer.get((case, n))
            if enc and p:
                ratio = p["min_s"] / enc["min_s"]
                target = ">= 200x" if peer_name == "psrpcore" else "-"
                v = verdict(ratio, 200) if peer_name == "psrpcore" else ""
                print("| CLIXML encode vs %s | %d | %s | %s %.0f obj/s | %.0fx | %s | %s |" % (
                    peer_name, n, ops(enc), peer_name, p["objects_per_s_best"], ratio, target, v))
        dfr, mem = rps.get(("defrag", n)), rps.get(("memcpy", n))
        if dfr and mem:
            ratio = mem["min_s"] / dfr["min_s"]
            print("| defrag + message decode vs memcpy | %d | %s | memcpy %s | %.0f%% | >= 30%% | %s |" % (
                n, mbs(dfr), mbs(mem), 100 * ratio, verdict(ratio, 0.30)))
        for peer_name, peer in (("psrpcore", core), ("pypsrp", py)):
            p = peer.get(("defrag", n))
            if dfr and p:
                print("| defrag + message decode vs %s | %d | %s | %s %s | %.0fx | - | |" % (
                    peer_name, n, mbs(dfr), peer_name, mbs(p), p["min_s"] / dfr["min_s"]))
        rcv = rps.get(("receive", n))
        for peer_name, peer in (("psrpcore", core), ("pypsrp", py)):
            p = peer.get(("receive", n))
            if rcv and p:
                print("| receive (fragments -> objects) vs %s | %d | %s | %s %.0f obj/s | %.0fx | - | |" % (
                    peer_name, n, ops(rcv), peer_name, p["objects_per_s_best"], p["min_s"] / rcv["min_s"]))
        js = rps.get(("jsonl", n))
        if js:
            print("| values -> JSON Lines | %d | %s | - | - | - | |" % (n, ops(js)))

    if e2e:
        print()
        print("| end to end, Get-Mailbox -ResultSize Unlimited | N | wall s (best of runs) | objects/s | "
              "peak RSS MiB | client CPU s | fake's CPU s in the same run |")
        print("|---|---|---|---|---|---|---|")
        by_n = {}
        for r in e2e:
            runs = r.get("rps") or []
            if runs:
                best = min(runs, key=lambda x: x["wall_s"])
                rss = max(x.get("maxrss_kib", 0) for x in runs) / 1024
                by_n[r["n"]] = best
                print("| rps exo -o jsonl > /dev/null | %d | %.2f | %.0f | %.1f | %.2f | %.2f |" % (
                    r["n"], best["wall_s"], r["n"] / best["wall_s"], rss,
                    best.get("user_s", 0) + best.get("sys_s", 0), best["server_cpu_s"]))
            p = r.get("pypsrp")
            if p:
                print("| pypsrp 0.9.1 (Basic, /powershell) | %d | %.2f | %.0f | %.1f | %.2f | %.2f |" % (
                    r["n"], p["wall_s"], r["n"] / p["wall_s"], p.get("maxrss_kib", 0) / 1024,
                    p.get("user_s", 0) + p.get("sys_s", 0), p["server_cpu_s"]))
            elif runs:
                print("| pypsrp 0.9.1 | %d | not run (capped at 10,000) | | | | |" % r["n"])
            t = r.get("fake_trivial_consumer")
            if t and "wall_s" in t:
                print("| fake + rps_session, one process, no rendering | %d | %.2f | %.0f | %.1f | %.2f | (included) |" % (
                    r["n"], t["wall_s"], r["n"] / t["wall_s"], t.get("maxrss_kib", 0) / 1024,
                    t.get("user_s", 0) + t.get("sys_s", 0)))
        print()
        for r in e2e:
            p, runs = r.get("pypsrp"), r.get("rps") or []
            if p and runs:
                best = min(runs, key=lambda x: x["wall_s"])
                print("- N=%d: rps is %.0fx faster than pypsrp in wall time, %.0fx in client CPU, %.1fx less peak RSS" % (
                    r["n"], p["wall_s"] / best["wall_s"],
                    (p.get("user_s", 0) + p.get("sys_s", 0)) / max(best.get("user_s", 0) + best.get("sys_s", 0), 0.01),
                    p.get("maxrss_kib", 1) / max(best.get("maxrss_kib", 1), 1)))
        if 100000 in by_n and 10000 in by_n:
            big, small = by_n[100000], by_n[10000]
            rate_big, rate_small = 100000 / big["wall_s"], 10000 / small["wall_s"]
            rss = max(x.get("maxrss_kib", 0) for r in e2e if r["n"] == 100000 for x in r["rps"]) / 1024
            within = rate_big >= 0.8 * rate_small
            print("- streaming 100,000: peak RSS %.1f MiB (target <= 64 MiB: %s); %.0f objects/s vs %.0f at 10,000 "
                  "(%.0f%%; target within 20%%: %s)" % (
                      rss, "met" if rss <= 64 else "**missed**", rate_big, rate_small,
                      100 * rate_big / rate_small, "met" if within else "**missed**"))
        for r in e2e:
            runs = r.get("rps") or []
            if runs:
                best = min(runs, key=lambda x: x["wall_s"])
                client = best.get("user_s", 0) + best.get("sys_s", 0)
                print("- N=%d: the fake used %.2f s of CPU while rps used %.2f s (%s)" % (
                    r["n"], best["server_cpu_s"], client,
                    "the fake keeps up" if best["server_cpu_s"] <= best["wall_s"] else "the fake may be the bottleneck"))


if __name__ == "__main__":
    sys.exit(main())
