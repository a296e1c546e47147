"""Does the demo's loop learn on every data draw? Runs `manage.py demo --no-serve` once per seed,
each from nothing in its own var directory, and prints one line per draw, then the tally.

    python tests/bench/bench_loop_repro.py                 # 10 draws: seeds 1..10
    python tests/bench/bench_loop_repro.py --seeds 1 2 3   # chosen draws
    python tests/bench/bench_loop_repro.py --cycles 3      # three monthly cycles per draw

A draw passes when the candidate was promoted, the blind spot's held-out error ends below 5 %
and no slice lost more than the gate's tolerance. The draw changes the simulated traffic, the
users' thumbs and the audit sample (audits are drawn per output id, new every run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\s+(blind_spot|rest|overall)\s+n=(\d+)\s+error rate\s+([\d.]+)%\s+->\s+([\d.]+)%", re.M)
PROMOTION = re.compile(r"^\s+promotion: (promoted|rejected)\s*(\S*) \((.*)\)$", re.M)


def run_draw(seed: int, *, cycles: int, timeout: float) -> dict:
    var = ROOT / "var" / f"repro-{seed}"
    subprocess.run(["rm", "-rf", str(var)], check=True)
    env = {**os.environ, "COGLOOP_VAR_DIR": str(var)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", "--seed", str(seed), "--cycles", str(cycles)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    out = proc.stdout + proc.stderr
    (var / "demo-output.txt").write_text(out)
    rows = ROW.findall(out)
    promotions = PROMOTION.findall(out)
    if proc.returncode != 0 or not rows or not promotions:
        return {
            "seed": seed,
            "ok": False,
            "seconds": seconds,
            "line": f"failed to finish: {out.strip()[-300:]}",
        }
    last = {name: (float(before), float(after)) for name, _, before, after in rows[-3:]}
    verdict, name, reason = promotions[-1]
    blind = last["blind_spot"]
    ok = verdict == "promoted" and blind[1] < 5.0 and "slices lost" not in reason
    line = (
        f"{verdict:<8} blind spot {blind[0]:5.1f}% -> {blind[1]:5.1f}%  rest {last['rest'][0]:5.1f}% -> "
        f"{last['rest'][1]:5.1f}%  overall {last['overall'][0]:5.1f}% -> {last['overall'][1]:5.1f}%  ({reason})"
    )
    return {"seed": seed, "ok": ok, "seconds": seconds, "line": line}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a draw may take")
    args = parser.parse_args()
    passed = 0
    print(f"| seed | pass | minutes | result (last cycle of {args.cycles}) |\n|---|---|---|---|", flush=True)
    for seed in args.seeds:
        try:
            r = run_draw(seed, cycles=args.cycles, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            r = {"seed": seed, "ok": False, "seconds": args.timeout, "line": "timed out"}
        passed += r["ok"]
        print(
            f"| {seed} | {'yes' if r['ok'] else 'NO'} | {r['seconds'] / 60:.1f} | {r['line']} |", flush=True
        )
    print(f"\n{passed} of {len(args.seeds)} draws promoted and fixed the blind spot (< 5 %).")


if __name__ == "__main__":
    main()
