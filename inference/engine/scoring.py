"""The cognition score: ``weight_consistency * consistency + weight_adaptability * adaptability``.

Both parts lie in [0, 1]; the weights default to 0.6 / 0.4 and come from settings.

consistency = claim_accuracy * (0.5 + 0.5 * answer_agreement) * contradiction_free
    claim_accuracy     share of checkable claims ``a op b = c`` whose arithmetic is right
                       (1.0 when nothing is checkable: absence of claims is not an error).
    answer_agreement   1 when the answer's number equals the reasoning's conclusion (the
                       result of the last claim), 0 when it differs or no answer was given;
                       1 when the reasoning concludes with no number to compare.
    contradiction_free 1 minus the share of claims that give the same left-hand side a
                       different result than an earlier claim, unless the later step is a
                       marked self-correction.
adaptability = 0.5 * strategy_diversity + 0.5 * error_recovery
    strategy_diversity (distinct named strategies - 1) / 2, clipped to [0, 1]: one strategy
                       scores 0, three or more score 1 ("other" does not count).
    error_recovery     share of wrong claims followed within two steps by a self-correction
                       (a cue such as "wait", or a correct claim on the same expression);
                       1.0 when there was no error to recover from.

A wrong claim therefore costs twice: in consistency, and in adaptability unless the model
noticed it. An answer contradicting its own reasoning halves consistency.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from .parser import ParsedOutput

CLAIM = re.compile(r"(-?\d+(?:\.\d+)?)\s*([+\-*/×÷])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
RECOVERY_WINDOW = 2


@dataclass(frozen=True)
class Claim:
    step: int
    left: str
    stated: str
    correct: bool


@dataclass
class ScoreParts:
    cognition_score: float
    consistency: float
    adaptability: float
    claim_accuracy: float
    answer_agreement: float
    contradiction_free: float
    strategy_diversity: float
    error_recovery: float
    checkable_claims: int
    wrong_claims: int
    wrong_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _evaluate(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op in "*×":
        return a * b
    if b == 0:
        return None
    return a / b


def extract_claims(step_index: int, text: str) -> list[Claim]:
    claims = []
    for m in CLAIM.finditer(text):
        a, op, b, c = Fraction(m.group(1)), m.group(2), Fraction(m.group(3)), Fraction(m.group(4))
        value = _evaluate(a, op, b)
        left = f"{m.group(1)} {op} {m.group(3)}"
        claims.append(Claim(step_index, left, m.group(4), value is not None and value == c))
    return claims


def score_output(
    parsed: ParsedOutput,
    *,
    weight_consistency: float = 0.6,
    weight_adaptability: float = 0.4,
    agreement: float | None = None,
    model_confidence: float | None = None,
    head_confidence: float | None = None,
) -> ScoreParts:
    claims = [c for s in parsed.steps for c in extract_claims(s.index, s.text)]
    correcting_steps = {s.index for s in parsed.steps if s.self_correction}
    wrong = [c for c in claims if not c.correct]
    claim_accuracy = 1.0 if not claims else (len(claims) - len(wrong)) / len(claims)

    if not parsed.answer:
        answer_agreement = 0.0
    elif claims and parsed.answer_value is not None:
        answer_agreement = 1.0 if Fraction(claims[-1].stated) == Fraction(str(parsed.answer_value)) else 0.0
    elif claims:
        answer_agreement = 0.0  # reasoning concluded with a number, the answer gives none
    else:
        answer_agreement = 1.0

    first_result: dict[str, str] = {}
    contradictions = 0
    for c in claims:
        earlier = first_result.setdefault(c.left, c.stated)
        if Fraction(earlier) != Fraction(c.stated) and c.step not in correcting_steps:
            contradictions += 1
    contradiction_free = 1.0 - (contradictions / len(claims) if claims else 0.0)

    consistency = claim_accuracy * (0.5 + 0.5 * answer_agreement) * contradiction_free
    if agreement is not None:  # self-consistency: the share of the group's other samples that agree
        consistency *= 0.5 + 0.5 * agreement

    named = {s.strategy for s in parsed.steps if s.strategy != "other"}
    strategy_diversity = min(1.0, max(0.0, (len(named) - 1) / 2))
    recovered = 0
    for w in wrong:
        window = range(w.step, w.step + RECOVERY_WINDOW + 1)
        if any(i in correcting_steps for i in window if i != w.step) or any(
            c.correct and c.left == w.left and c.step in window for c in claims
        ):
            recovered += 1
    error_recovery = 1.0 if not wrong else recovered / len(wrong)
    adaptability = 0.5 * strategy_diversity + 0.5 * error_recovery

    score = weight_consistency * consistency + weight_adaptability * adaptability
    return ScoreParts(
        cognition_score=round(score, 4),
        consistency=round(consistency, 4),
        adaptability=round(adaptability, 4),
        claim_accuracy=round(claim_accuracy, 4),
        answer_agreement=answer_agreement,
        contradiction_free=round(contradiction_free, 4),
        strategy_diversity=round(strategy_diversity, 4),
        error_recovery=round(error_recovery, 4),
        checkable_claims=len(claims),
        wrong_claims=len(wrong),
        wrong_steps=sorted({c.step for c in wrong}),
    )
