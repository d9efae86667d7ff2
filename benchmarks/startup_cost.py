"""What the start-up hook adds to every Python start in this environment.

Times `python -c pass` with the hook on and off (RGEN_HARNESS_DISABLE_HOOK=1), interleaved, and
prints a table of medians. Target: <= 5 ms added.

    python benchmarks/startup_cost.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def time_start(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def importtime_us(env: dict[str, str]) -> int:
    """Cumulative import time (us) of the hook's modules, from `python -X importtime`: less
    noisy than wall time on a busy machine."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    total = 0
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] in ("rgen_harness._hook", "rgen_harness"):
            total += int(parts[0].split(":")[-1])  # self time: nested imports count once
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    on = {k: v for k, v in os.environ.items() if k != "RGEN_HARNESS_DISABLE_HOOK"}
    off = {**on, "RGEN_HARNESS_DISABLE_HOOK": "1"}
    for env in (on, off):  # warm the file cache
        time_start(env)
    samples: dict[str, list[float]] = {"hook on": [], "hook off": []}
    for _ in range(args.runs):
        samples["hook on"].append(time_start(on))
        samples["hook off"].append(time_start(off))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"python -c pass, {args.runs} interleaved runs each ({sys.executable})")
    print(f"| {'setting':<9} | median ms | p10 ms | p90 ms |")
    print("|-----------|----------:|-------:|-------:|")
    for name, values in samples.items():
        q = statistics.quantiles(values, n=10)
        print(f"| {name:<9} | {med[name]:9.2f} | {q[0]:6.2f} | {q[-1]:6.2f} |")
    print(f"added by the hook: {med['hook on'] - med['hook off']:+.2f} ms (target <= 5 ms)")
    imp = statistics.median(importtime_us(on) for _ in range(10)) / 1000
    print(f"import time of the hook's own modules (-X importtime, median of 10): {imp:.2f} ms")


if __name__ == "__main__":
    main()
