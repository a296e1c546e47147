"""The claim checker, run on a reviewer's correction before it can count.

The same checker that scores outputs (``inference.engine.scoring.extract_claims``) reads the
corrected steps: a step with a wrong claim, or a corrected answer that disagrees with the
value the corrected steps conclude with, is a problem named by its step. A correction with
problems is refused at submit unless the reviewer overrides with a reason, which sends it to
a lead (second review) instead of straight into training data.
"""

from __future__ import annotations

import re
from fractions import Fraction

from inference.engine.scoring import extract_claims

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def answer_value(text: str) -> Fraction | None:
    """The number an answer states ("34", "The answer is 34.", "$1,200.00"); None without one.

    The last number counts: "The answer is 34" and "34 apples after 2 days" read differently,
    but a corrected answer field holds the result, usually alone or last.
    """
    numbers = NUMBER.findall(text.replace("−", "-"))
    if not numbers:
        return None
    try:
        return Fraction(numbers[-1].replace(",", ""))
    except ValueError:
        return None


def correction_problems(corrected_steps: list[dict], corrected_answer: str) -> dict[str, list[str]]:
    """{field: [problem, ...]} for a correction; empty when the checker finds nothing wrong."""
    problems: dict[str, list[str]] = {}
    concluded: Fraction | None = None
    for i, step in enumerate(corrected_steps, start=1):
        for claim in extract_claims(i, str(step.get("text", ""))):
            if not claim.correct:
                problems.setdefault("corrected_steps", []).append(
                    f"step {i}: {claim.left} = {claim.stated} is not right"
                )
            stated = answer_value(str(claim.stated))
            if stated is not None:
                concluded = stated
    value = answer_value(corrected_answer)
    if concluded is not None and value is not None and value != concluded:
        problems["corrected_answer"] = [
            f"the answer {value} disagrees with the corrected steps, which conclude {_show(concluded)}"
        ]
    return problems


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def answers_agree(a: str, b: str) -> bool:
    """Two corrected answers agree when they state the same value ("34" and "The answer is 34.0"),
    or, without a number, the same words."""
    va, vb = answer_value(a), answer_value(b)
    if va is not None or vb is not None:
        return va == vb
    return _normal(a) == _normal(b)


def _normal(text: str) -> str:
    text = re.sub(r"^\s*the answer is\s*", "", text.strip().lower())
    return re.sub(r"[\s.]+$", "", text)
