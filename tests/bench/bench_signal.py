"""Is the cognition score a signal on real reasoning text? The seed's score beside today's.

    python tests/bench/bench_signal.py                       # /work/shared/data/gsm8k/train.jsonl
    python tests/bench/bench_signal.py PATH --problems 1000 --groups 300

Labelled set, from GSM8K reference solutions written as a reasoning model's answers
(``inject.to_r1``):

- right: every reference solution, as written;
- wrong, lone answers: one error of each kind in ``inject.py`` per problem (first
  ``--problems`` problems);
- grouped samples (``--groups`` problems, 5 samples each): each sample is the reference
  with probability 0.6, else one injected error of a random kind; every sample is scored
  with ``agreement`` = the share of the other four that give the same answer.

Reported per scorer: false alarms (right solutions in which the checker finds a wrong
claim), single arithmetic errors caught (the checker finds a wrong claim), AUROC of the
score for right vs wrong, and capture precision and recall at the configured threshold
(captured = score < 0.6; positive = wrong). The seed's scorer is read from git (commit
ab7ae4e) and takes no agreement.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference.engine import scoring  # noqa: E402
from inference.engine.parser import parse_output  # noqa: E402
from tests.bench import inject  # noqa: E402

SEED_COMMIT = "ab7ae4e"
THRESHOLD = 0.6
GROUP_SIZE = 5
RIGHT_SHARE = 0.6
ARITHMETIC = ("arithmetic", "arithmetic_propagated")


@dataclass
class Item:
    set: str  # "lone" | "grouped"
    kind: str  # "right" or an injection kind
    text: str
    answer: str
    agreement: float | None = None

    @property
    def wrong(self) -> bool:
        return self.kind != "right"


def seed_scoring() -> types.ModuleType:
    """The scorer as the seed shipped it, loaded from git into a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{SEED_COMMIT}:inference/engine/scoring.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = source.replace("from .parser import", "from inference.engine.parser import")
    module = types.ModuleType("seed_scoring")
    sys.modules["seed_scoring"] = module  # dataclasses look their module up by name
    exec(compile(source, "seed_scoring.py", "exec"), module.__dict__)  # noqa: S102 - our own file from git
    return module


def build(solutions: list[inject.Solution], problems: int, groups: int, seed: int) -> list[Item]:
    items = [Item("lone", "right", inject.to_r1(s), s.answer) for s in solutions]
    for sol in solutions[:problems]:
        for kind in inject.KINDS:
            hit = inject.inject(sol, kind, seed=seed)
            if hit is not None:
                items.append(Item("lone", kind, inject.to_r1(hit.solution), hit.solution.answer))
    rng = random.Random(seed)
    for sol in rng.sample(solutions, min(groups, len(solutions))):
        group = []
        for k in range(GROUP_SIZE):
            hit = None
            if rng.random() >= RIGHT_SHARE:
                hit = inject.inject(sol, rng.choice(inject.KINDS), seed=seed + 1 + k)
            if hit is None or not hit.answer_changed and hit.kind not in ARITHMETIC:
                group.append(Item("grouped", "right", inject.to_r1(sol), sol.answer))
            else:
                group.append(Item("grouped", hit.kind, inject.to_r1(hit.solution), hit.solution.answer))
        for item in group:
            others = [o for o in group if o is not item]
            item.agreement = sum(inject._value(o.answer) == inject._value(item.answer) for o in others) / len(
                others
            )
        items += group
    return items


def auroc(scores_right: list[float], scores_wrong: list[float]) -> float:
    """P(a right answer scores above a wrong one), ties counted half (Mann-Whitney)."""
    ranked = sorted([(s, 1) for s in scores_right] + [(s, 0) for s in scores_wrong])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += mid * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_r, n_w = len(scores_right), len(scores_wrong)
    return (rank_sum - n_r * (n_r + 1) / 2) / (n_r * n_w)


def measure(items: list[Item], score: Callable[[Item], tuple[float, int]]) -> dict:
    rows = [(item, *score(item)) for item in items]
    right = [r for r in rows if not r[0].wrong]
    single = [r for r in rows if r[0].set == "lone" and r[0].kind in ARITHMETIC]
    out = {
        "false_alarms": sum(1 for r in right if r[0].set == "lone" and r[2])
        / sum(1 for r in right if r[0].set == "lone"),
        "arithmetic_caught": sum(1 for r in single if r[2]) / len(single),
    }
    for name, subset in (("lone", "lone"), ("grouped", "grouped"), ("all", None)):
        part = [r for r in rows if subset is None or r[0].set == subset]
        good = [r[1] for r in part if not r[0].wrong]
        bad = [r[1] for r in part if r[0].wrong]
        captured = [r for r in part if r[1] < THRESHOLD]
        true_pos = sum(1 for r in captured if r[0].wrong)
        out[name] = {
            "auroc": auroc(good, bad),
            "precision": true_pos / len(captured) if captured else 0.0,
            "recall": true_pos / len(bad) if bad else 0.0,
            "n": (len(good), len(bad)),
        }
    kinds = sorted({r[0].kind for r in rows if r[0].set == "lone"})
    out["captured_by_kind"] = {
        k: sum(1 for r in rows if r[0].set == "lone" and r[0].kind == k and r[1] < THRESHOLD)
        / sum(1 for r in rows if r[0].set == "lone" and r[0].kind == k)
        for k in kinds
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=inject.DEFAULT_DATA)
    parser.add_argument("--problems", type=int, default=1000, help="problems that get lone injected errors")
    parser.add_argument("--groups", type=int, default=300, help="problems that get a group of samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    solutions = inject.load(args.data)
    items = build(solutions, args.problems, args.groups, args.seed)
    seed = seed_scoring()

    def seed_score(item: Item) -> tuple[float, int]:
        parts = seed.score_output(parse_output(item.text))
        return parts.cognition_score, parts.wrong_claims

    def new_score(item: Item) -> tuple[float, int]:
        parts = scoring.score_output(parse_output(item.text), agreement=item.agreement)
        return parts.cognition_score, parts.wrong_claims

    results = {"seed score (ab7ae4e)": measure(items, seed_score), "this score": measure(items, new_score)}
    n_right = sum(1 for i in items if i.set == "lone" and not i.wrong)
    n_single = sum(1 for i in items if i.set == "lone" and i.kind in ARITHMETIC)
    print(f"{len(items)} items; {n_right} right reference solutions, {n_single} single arithmetic errors")
    print()
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))

    def row(label: str, get: Callable[[dict], float]) -> None:
        print(f"| {label} | " + " | ".join(f"{get(r):.3f}" for r in results.values()) + " |")

    row("false alarms on right solutions (share)", lambda r: r["false_alarms"])
    row("single arithmetic errors caught (share)", lambda r: r["arithmetic_caught"])
    for name in ("lone", "grouped", "all"):
        n_good, n_bad = next(iter(results.values()))[name]["n"]
        row(f"AUROC, {name} ({n_good} right / {n_bad} wrong)", lambda r, n=name: r[n]["auroc"])
        row(f"capture precision at {THRESHOLD}, {name}", lambda r, n=name: r[n]["precision"])
        row(f"capture recall at {THRESHOLD}, {name}", lambda r, n=name: r[n]["recall"])
    for kind in next(iter(results.values()))["captured_by_kind"]:
        row(f"captured (score < {THRESHOLD}), lone {kind}", lambda r, k=kind: r["captured_by_kind"][k])
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
