"""The synthetic reasoning workload that `cogloop-tiny` is pretrained on and measured with.

Three problem kinds, every step a checkable claim ``a op b = c``:

- ``chain``: "Start with 37. Add 5. Take away 8. What is the result?" — one deduction step
  per instruction.
- ``pattern``: "What comes next: 3, 7, 11, 15?" — induction steps find the common
  difference, a deduction step applies it.
- ``analogy``: "3 is to 9 as 12 is to what?" — an analogy step maps the pair, a deduction
  step applies it.

The planted blind spot: in the pretraining corpus every *take away* step is written with a
minus sign but computed as an addition (``42 - 8 = 50``), as if a sloppy data source had
been scraped. The base model reproduces it, the cognition score's arithmetic check catches
it, and reviewers' corrections are what can teach it away. Chains containing "take away"
form the ``blind_spot`` slice; everything else is ``rest``.

Problems are drawn from a seeded ``random.Random`` so that a (seed, split) pair always
gives the same problems; the split is decided by a hash of the prompt so that traffic,
training and held-out evaluation never share a problem.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .chat import Step, render_response, render_steps

BLIND_SPOT = "blind_spot"
REST = "rest"


@dataclass(frozen=True)
class Problem:
    kind: str
    prompt: str
    answer: int
    steps: tuple[Step, ...]
    slice: str = REST
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def reasoning_text(self) -> str:
        return render_steps(self.steps)

    def response_text(self) -> str:
        return render_response(self.steps, self.answer)


def _claim(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {b} = {c}"


def _chain(rng: random.Random, *, force_take_away: bool | None, planted: bool) -> Problem:
    while True:
        start = rng.randint(10, 60)
        n_ops = rng.randint(2, 4)
        ops = [rng.choice(("add", "subtract", "take away")) for _ in range(n_ops)]
        if force_take_away is True and "take away" not in ops:
            ops[rng.randrange(n_ops)] = "take away"
        if force_take_away is False:
            ops = ["subtract" if o == "take away" else o for o in ops]
        value, true_value = start, start
        steps, ok = [], True
        words = [f"Start with {start}."]
        for op in ops:
            n = rng.randint(1, 9)
            words.append(f"{op.capitalize()} {n}.")
            if op == "add":
                result = value + n
                steps.append(Step("deduction", _claim(value, "+", n, result)))
            else:
                correct = value - n
                # The planted error: "take away" is written as a minus but computed as a plus.
                result = value + n if (op == "take away" and planted) else correct
                steps.append(Step("deduction", _claim(value, "-", n, result)))
            true_value = true_value + n if op == "add" else true_value - n
            value = result
            if not (0 <= value <= 99 and 0 <= true_value <= 99):
                ok = False
                break
        if ok:
            prompt = " ".join(words) + " What is the result?"
            slice_ = BLIND_SPOT if "take away" in ops else REST
            return Problem("chain", prompt, value, tuple(steps), slice_, {"true_answer": true_value})


def _pattern(rng: random.Random) -> Problem:
    first = rng.randint(1, 30)
    diff = rng.randint(1, 9)
    terms = [first + i * diff for i in range(4)]
    steps = [Step("induction", _claim(terms[i + 1], "-", terms[i], diff)) for i in range(3)]
    nxt = terms[-1] + diff
    steps.append(Step("deduction", _claim(terms[-1], "+", diff, nxt)))
    prompt = "What comes next: " + ", ".join(str(t) for t in terms) + "?"
    return Problem("pattern", prompt, nxt, tuple(steps), REST, {"true_answer": nxt})


def _analogy(rng: random.Random) -> Problem:
    a = rng.randint(1, 40)
    diff = rng.randint(1, 20)
    c = rng.randint(1, 60)
    steps = (
        Step("analogy", _claim(a + diff, "-", a, diff)),
        Step("deduction", _claim(c, "+", diff, c + diff)),
    )
    prompt = f"{a} is to {a + diff} as {c} is to what?"
    return Problem("analogy", prompt, c + diff, steps, REST, {"true_answer": c + diff})


def draw_problem(rng: random.Random, *, planted: bool, blind_spot_share: float = 0.3) -> Problem:
    """One problem. ``planted`` writes the blind-spot error into its steps (corpus mode)."""
    roll = rng.random()
    if roll < blind_spot_share:
        return _chain(rng, force_take_away=True, planted=planted)
    roll = rng.random()
    if roll < 0.5:
        return _chain(rng, force_take_away=False, planted=planted)
    if roll < 0.75:
        return _pattern(rng)
    return _analogy(rng)


def split_of(prompt: str) -> str:
    """Stable split by hash: 'eval' for held-out problems, 'train' for everything else."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 10
    return "eval" if bucket == 0 else "train"


def problems(
    n: int, *, seed: int, split: str, planted: bool = False, blind_spot_share: float = 0.3
) -> list[Problem]:
    """``n`` distinct problems of one split ('train' or 'eval'), reproducible from ``seed``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < n:
        p = draw_problem(rng, planted=planted, blind_spot_share=blind_spot_share)
        if p.prompt in seen or split_of(p.prompt) != split:
            continue
        seen.add(p.prompt)
        out.append(p)
    return out


def solve(prompt: str) -> Problem | None:
    """The reference solver (plays the reviewer): the correct steps for a workload prompt.

    Returns None for prompts that are not of the workload's three forms.
    """
    import re

    m = re.fullmatch(
        r"Start with (\d+)\.((?: (?:Add|Subtract|Take away) \d+\.)+) What is the result\?", prompt
    )
    if m:
        value = int(m.group(1))
        steps = []
        ops = re.findall(r"(Add|Subtract|Take away) (\d+)\.", m.group(2))
        for op, n_s in ops:
            n = int(n_s)
            if op == "Add":
                steps.append(Step("deduction", _claim(value, "+", n, value + n)))
                value += n
            else:
                steps.append(Step("deduction", _claim(value, "-", n, value - n)))
                value -= n
        slice_ = BLIND_SPOT if any(op == "Take away" for op, _ in ops) else REST
        return Problem("chain", prompt, value, tuple(steps), slice_)
    m = re.fullmatch(r"What comes next: ([\d, ]+)\?", prompt)
    if m:
        terms = [int(t) for t in m.group(1).split(",")]
        if len(terms) < 2:
            return None
        diff = terms[1] - terms[0]
        steps = [
            Step("induction", _claim(terms[i + 1], "-", terms[i], terms[i + 1] - terms[i]))
            for i in range(len(terms) - 1)
        ]
        steps.append(Step("deduction", _claim(terms[-1], "+", diff, terms[-1] + diff)))
        return Problem("pattern", prompt, terms[-1] + diff, tuple(steps), REST)
    m = re.fullmatch(r"(\d+) is to (\d+) as (\d+) is to what\?", prompt)
    if m:
        a, b, c = (int(g) for g in m.groups())
        diff = b - a
        steps = [
            Step("analogy", _claim(b, "-", a, diff)),
            Step("deduction", _claim(c, "+", diff, c + diff)),
        ]
        return Problem("analogy", prompt, c + diff, tuple(steps), REST)
    return None
