"""Plant known errors in GSM8K reference solutions, reproducibly, to measure the score on them.

    python tests/bench/inject.py --kind arithmetic --n 5                 # JSON lines on stdout
    python tests/bench/inject.py --data PATH --kind dropped_step --seed 3

Kinds (one error per solution):

    arithmetic              one computed result changed; later steps keep the right value
    arithmetic_propagated   one computed result changed and carried through every later step
                            (and the final answer when it depends on it)
    final_answer            the reasoning is untouched, the final answer differs
    wrong_operation         one step applies another operation (+ for -, * for /) and computes
                            it right; later steps carry the result
    dropped_step            one step left out; later steps use its input instead of its result

A solution is GSM8K's: lines with calculator notes ``<<48/2=24>>`` (the note's result written
again after it) and a last line ``#### 72``. The notes give each computation exactly, which
is what lets an error be carried forward; ``to_r1`` strips them to get text as a model writes
it. A kind that does not fit a solution (no computation to change) returns None.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference.engine.claims import evaluate  # noqa: E402

DEFAULT_DATA = Path("/work/shared/data/gsm8k/train.jsonl")
NOTE = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
KINDS = ("arithmetic", "arithmetic_propagated", "final_answer", "wrong_operation", "dropped_step")
SWAPPED = {"+": "-", "-": "+", "*": "/", "/": "*"}


@dataclass(frozen=True)
class Solution:
    question: str
    lines: tuple[str, ...]
    answer: str

    @classmethod
    def from_row(cls, row: dict) -> Solution:
        body, _, final = row["answer"].rpartition("####")
        lines = tuple(ln.strip() for ln in body.strip().splitlines() if ln.strip())
        return cls(row["question"], lines, final.strip().replace(",", ""))


@dataclass(frozen=True)
class Injected:
    kind: str
    solution: Solution  # the solution with the error in it
    line: int  # index of the changed (or dropped) line
    correct_answer: str

    @property
    def answer_changed(self) -> bool:
        return _value(self.solution.answer) != _value(self.correct_answer)


def load(path: Path, limit: int | None = None) -> list[Solution]:
    out = []
    with path.open() as f:
        for line in f:
            if line.strip():
                out.append(Solution.from_row(json.loads(line)))
            if limit is not None and len(out) >= limit:
                break
    return out


def to_r1(solution: Solution) -> str:
    """The solution as a reasoning model's output: one paragraph a step, then the answer."""
    steps = "\n\n".join(NOTE.sub("", ln) for ln in solution.lines)
    return f"{steps}\n</think>\n\nThe answer is {solution.answer}."


def _value(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").replace("$", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def _notes(solution: Solution) -> list[tuple[int, re.Match[str]]]:
    """Notes whose result is written again right after them (so the change is visible)."""
    found = []
    for i, line in enumerate(solution.lines):
        for m in NOTE.finditer(line):
            result = m.group(2).strip()
            if _value(result) is not None and line[m.end() :].startswith(result):
                found.append((i, m))
    return found


def _set_result(line: str, m: re.Match[str], expr: str, result: str) -> str:
    old = m.group(2).strip()
    return line[: m.start()] + f"<<{expr}={result}>>{result}" + line[m.end() + len(old) :]


def _carry(lines: list[str], start: int, changes: dict[Fraction, Fraction]) -> None:
    """Recompute every note from line ``start`` on whose operands changed, in prose too."""
    for i in range(start, len(lines)):
        pos = 0
        while (m := NOTE.search(lines[i], pos)) is not None:
            expr = m.group(1)
            swapped = NUMBER.sub(lambda n: _format(changes.get(_value(n.group(0)), _value(n.group(0)))), expr)
            result = m.group(2).strip()
            if swapped == expr or not lines[i][m.end() :].startswith(result):
                pos = m.end()
                continue
            new = evaluate(swapped)
            if new is None or new < 0:
                pos = m.end()
                continue
            prose_start = lines[i].rfind(">>", 0, m.start()) + 2 if ">>" in lines[i][: m.start()] else 0
            prose = lines[i][prose_start : m.start()]
            prose = NUMBER.sub(
                lambda n: (
                    _format(changes[_value(n.group(0))]) if _value(n.group(0)) in changes else n.group(0)
                ),
                prose,
            )
            line = lines[i][:prose_start] + prose + lines[i][m.start() :]
            m2 = NOTE.search(line, prose_start + len(prose))
            assert m2 is not None
            lines[i] = _set_result(line, m2, swapped, _format(new))
            old = _value(result)
            if old is not None and old != new:
                changes[old] = new
            pos = m2.end()


def _slip(value: Fraction, rng: random.Random) -> Fraction:
    """A plausible slip of the pen that no rounding explains: off by 1, 2 or 10, or a digit."""
    while True:
        new = value + rng.choice((1, -1, 2, -2, 10, -10, 3, -3))
        if new >= 0 or value < 0:
            return new


def _finish(kind: str, sol: Solution, lines: list[str], line: int, changes: dict) -> Injected:
    answer = _value(sol.answer)
    new_answer = changes.get(answer, answer) if answer is not None else None
    final = _format(new_answer) if new_answer is not None else sol.answer
    return Injected(kind, Solution(sol.question, tuple(lines), final), line, sol.answer)


def arithmetic(sol: Solution, rng: random.Random, *, propagate: bool = False) -> Injected | None:
    notes = _notes(sol)
    if not notes:
        return None
    i, m = rng.choice(notes)
    old = _value(m.group(2))
    assert old is not None
    new = _slip(old, rng)
    lines = list(sol.lines)
    lines[i] = _set_result(lines[i], m, m.group(1), _format(new))
    changes: dict[Fraction, Fraction] = {}
    if propagate:
        changes[old] = new
        _carry(lines, i + 1, changes)
    kind = "arithmetic_propagated" if propagate else "arithmetic"
    return _finish(kind, sol, lines, i, changes)


def final_answer(sol: Solution, rng: random.Random) -> Injected | None:
    answer = _value(sol.answer)
    if answer is None:
        return None
    wrong = _slip(answer, rng)
    return Injected(
        "final_answer", Solution(sol.question, sol.lines, _format(wrong)), len(sol.lines), sol.answer
    )


def wrong_operation(sol: Solution, rng: random.Random) -> Injected | None:
    candidates = []
    for i, m in _notes(sol):
        ops = re.findall(r"[+\-*/]", m.group(1))
        prose_end = sol.lines[i][: m.start()]
        visible = re.search(r"([\d.,]+)\s*([+\-*/x×])\s*\$?([\d.,]+)\s*=\s*\$?\s*$", prose_end)
        if len(ops) == 1 and visible is not None:
            candidates.append((i, m, ops[0], visible))
    rng.shuffle(candidates)
    for i, m, op, visible in candidates:
        expr = m.group(1).replace(op, SWAPPED[op])
        new = evaluate(expr)
        old = _value(m.group(2))
        if new is None or old is None or new == old or new < 0:
            continue
        line = sol.lines[i]
        line = line[: visible.start(2)] + SWAPPED[op] + line[visible.end(2) :]
        m2 = NOTE.search(line, visible.start(2))
        assert m2 is not None
        lines = list(sol.lines)
        lines[i] = _set_result(line, m2, expr, _format(new))
        changes = {old: new}
        _carry(lines, i + 1, changes)
        return _finish("wrong_operation", sol, lines, i, changes)
    return None


def dropped_step(sol: Solution, rng: random.Random) -> Injected | None:
    notes = [(i, m) for i, m in _notes(sol) if i < len(sol.lines) - 1]
    rng.shuffle(notes)
    for i, m in notes:
        result = _value(m.group(2))
        operands = [
            v for v in (_value(n) for n in NUMBER.findall(m.group(1))) if v is not None and v != result
        ]
        used_later = any(
            result in {_value(n) for n in NUMBER.findall(later.group(1))} for j, later in _notes(sol) if j > i
        )
        if not operands or not used_later:
            continue
        lines = list(sol.lines)
        del lines[i]
        changes: dict[Fraction, Fraction] = {result: operands[0]} if result is not None else {}
        _carry(lines, i, changes)
        return _finish("dropped_step", sol, lines, i, changes)
    return None


INJECTORS: dict[str, Callable[[Solution, random.Random], Injected | None]] = {
    "arithmetic": arithmetic,
    "arithmetic_propagated": lambda s, r: arithmetic(s, r, propagate=True),
    "final_answer": final_answer,
    "wrong_operation": wrong_operation,
    "dropped_step": dropped_step,
}


def inject(sol: Solution, kind: str, *, seed: int) -> Injected | None:
    """One error of ``kind`` in ``sol``; the same (solution, kind, seed) always gives the same."""
    rng = random.Random(f"{seed}:{kind}:{sol.question}")
    return INJECTORS[kind](sol, rng)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K-format JSON lines")
    parser.add_argument("--kind", choices=KINDS, default="arithmetic")
    parser.add_argument("--n", type=int, default=10, help="how many solutions to read")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for sol in load(args.data, args.n):
        item = inject(sol, args.kind, seed=args.seed)
        if item is not None:
            row = {
                "kind": item.kind,
                "question": sol.question,
                "line": item.line,
                "correct_answer": item.correct_answer,
                "answer": item.solution.answer,
                "text": to_r1(item.solution),
            }
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
