"""The claim checker, run on a reviewer's correction before it can count.

The same checker that scores outputs (``inference.engine.scoring.extract_claims``) reads the
corrected steps: a step with a wrong claim, or a corrected answer that disagrees with the
value the corrected steps conclude with, is a problem named by its step. A correction with
problems is refused at submit unless the reviewer overrides with a reason, which sends it to
a lead (second review) instead of straight into training data.
"""

from __future__ import annotations

from fractions import Fraction

from inference.engine.agreement import final_number, normalise_answer
from inference.engine.scoring import extract_claims


def answer_value(text: str) -> Fraction | None:
    """The number an answer states ("34", "The answer is 34.", "$1,200.00"); None without one.
    Read as sample agreement reads answers (``inference.engine.agreement.final_number``)."""
    found = final_number(text)
    return found[2] if found is not None else None


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
    or, without a number, the same words (``inference.engine.agreement.normalise_answer``)."""
    return normalise_answer(a) == normalise_answer(b)
