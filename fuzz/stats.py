#!/usr/bin/env python3
"""Prints the fuzz table (markdown) from fuzz/stats/*.log, as written by run.sh / fork reruns."""
import re, sys
from pathlib import Path

d = Path(__file__).resolve().parent / "stats"
rows = []
for t in ["envelope", "fragment", "message", "clixml", "jwt", "transcript", "cmdline"]:
    for suffix, mode in ((".log", "single"), (".fork.log", "fork")):
        p = d / f"{t}{suffix}"
        if not p.exists():
            continue
        text = p.read_text(errors="replace")
        wall = re.search(r"wall=(\d+)s corpus_files=(\d+)", text)
        secs, files = (int(wall.group(1)), int(wall.group(2))) if wall else (0, 0)
        if mode == "single":
            ex = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
            eps = re.search(r"stat::average_exec_per_sec:\s*(\d+)", text)
            last = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", text)
            cov, ft = (last[-1][1], last[-1][2]) if last else ("?", "?")
            execs = int(ex.group(1)) if ex else (int(last[-1][0]) if last else 0)
            rate = int(eps.group(1)) if eps else 0
            crashes = len(re.findall(r"^==\d+== ERROR: libFuzzer: deadly signal|panicked at", text, re.M))
            crashes = 1 if crashes else 0
        else:
            last = re.findall(r"#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s: (\d+) oom/timeout/crash: (\d+)/(\d+)/(\d+)", text)
            if not last:
                continue
            n, cov, ft, _, rate, oom, to, cr = last[-1]
            execs, rate, crashes = int(n), int(rate), int(cr) + int(to) + int(oom)
        rows.append((t, mode, secs, execs, rate, cov, ft, files, crashes))
print("| target | mode | seconds | executions | exec/s | cov | ft | corpus files | crashes |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
