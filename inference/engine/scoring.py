"""The cognition score: ``weight_consistency * consistency + weight_adaptability * adaptability``.

Both parts lie in [0, 1]; the weights default to 0.6 / 0.4 and come from settings. Outputs
scoring below ``CAPTURE_SCORE_BELOW`` (0.6) go to human review, so the score is built to put
wrong answers below 0.6 and right ones above it, and to be unmoved by words that cost a
model nothing ("Wait, let me verify.", strategy tags).

consistency = support * claim_check * (0.5 + 0.5 * answer_agreement) * contradiction_free

    support            what speaks for the answer: the weighted mean of the signals present,
                       each in [0, 1]:
                       verification (weight 1): 1.0 when the reasoning holds at least one
                         checkable claim (claims.py), UNVERIFIED = 0.5 when it has steps but
                         nothing checkable, NO_REASONING = 0.2 when it has no steps at all;
                       agreement (weight 1, when given): the share of the other samples for the
                         same prompt whose answer is this one's;
                       model_confidence (weight 0.5, when given): the answer's probability
                         from the model's token log-probabilities;
                       head_confidence (weight 0.5, when given): the metacognition head's
                         probability that the answer is right.
    claim_check        1.0 when every wrong claim was corrected (or none was wrong), else
                       0.5 * claim_accuracy: one uncorrected error at least halves it.
    claim_accuracy     share of checkable claims whose arithmetic is right (1.0 with none).
    answer_agreement   1.0 when the answer's number is the reasoning's conclusion (the result
                       of its last claim, or the last number of its last step that has
                       numbers when that step claims nothing), 0.5 when it is another number
                       the reasoning reached, 0.0 when it is none of them or there is no
                       answer; 1.0 when the reasoning holds no number to compare.
    contradiction_free 1 minus the share of claims that give an expression already claimed a
                       different result, unless the later one corrects a wrong earlier one.

adaptability = min(consistency, 0.5 * error_recovery + 0.5 * strategy_diversity)

    error_recovery     share of wrong claims that a later claim corrects within
                       RECOVERY_WINDOW steps (the same expression stated right, or a
                       self-correction step stating the right value); 1.0 when nothing was
                       wrong. A cue word alone corrects nothing, nor does the right value
                       turning up by coincidence in an unmarked later step.
    strategy_diversity (distinct named strategies - 1) / 2, clipped to [0, 1].
    The cap at consistency means neither switching strategies nor recovering can lift an
    answer above what its evidence supports: with weights summing to 1 the score never
    exceeds consistency, so a wrong answer (consistency <= 0.5) stays below 0.6.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from .claims import check_claims, numbers, same_value
from .parser import ParsedOutput

RECOVERY_WINDOW = 2
UNVERIFIED = 0.5
NO_REASONING = 0.2
SUPPORT_WEIGHTS = {"verification": 1.0, "agreement": 1.0, "model_confidence": 0.5, "head_confidence": 0.5}


@dataclass(frozen=True)
class Claim:
    step: int
    left: str
    stated: str
    correct: bool
    computed: Fraction = Fraction(0)
    stated_value: Fraction = Fraction(0)
    approximate: bool = False


@dataclass
class ScoreParts:
    cognition_score: float
    consistency: float
    adaptability: float
    support: float
    verification: float
    claim_check: float
    claim_accuracy: float
    answer_agreement: float
    contradiction_free: float
    strategy_diversity: float
    error_recovery: float
    checkable_claims: int
    wrong_claims: int
    uncorrected_wrong_claims: int
    agreement: float | None = None
    model_confidence: float | None = None
    head_confidence: float | None = None
    wrong_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def extract_claims(step_index: int, text: str) -> list[Claim]:
    return [
        Claim(step_index, c.left, c.stated, c.correct, c.computed, c.stated_value, c.approximate)
        for c in check_claims(text)
    ]


def _corrections(parsed: ParsedOutput, claims: list[Claim]) -> dict[int, Claim]:
    """Wrong claims (by position in ``claims``) mapped to the later claim that corrects them."""
    fixed: dict[int, Claim] = {}
    for i, wrong in enumerate(claims):
        if wrong.correct:
            continue
        window = range(wrong.step, wrong.step + RECOVERY_WINDOW + 1)
        for later in claims[i + 1 :]:
            if later.step in window and later.correct and later.left == wrong.left:
                fixed[i] = later
                break
        else:
            for step in parsed.steps:
                said = {v for v, _ in numbers(step.text)}
                if (
                    step.index in window
                    and step.index > wrong.step
                    and step.self_correction
                    and wrong.computed in said
                ):
                    fixed[i] = Claim(
                        step.index, wrong.left, str(wrong.computed), True, wrong.computed, wrong.computed
                    )
                    break
    return fixed


def _answer_decimals(value: float) -> int:
    return 0 if float(value).is_integer() else len(repr(float(value)).split(".")[1])


def _answer_agreement(parsed: ParsedOutput, claims: list[Claim]) -> float:
    numeric_steps = [s for s in parsed.steps if numbers(s.text)]
    if not numeric_steps:
        return 1.0  # nothing to compare with
    if not parsed.answer or parsed.answer_value is None:
        return 0.0
    last = numeric_steps[-1]
    last_claims = [c for c in claims if c.step == last.index]
    conclusion = last_claims[-1].stated_value if last_claims else numbers(last.text)[-1][0]
    answer = Fraction(repr(float(parsed.answer_value)))
    decimals = _answer_decimals(parsed.answer_value)
    if same_value(conclusion, answer, decimals):
        return 1.0
    reached = {c.stated_value for c in claims} | {v for v, _ in numbers(last.text)}
    return 0.5 if any(same_value(v, answer, decimals) for v in reached) else 0.0


def _support(verification: float, signals: dict[str, float | None]) -> float:
    present = {"verification": verification, **{k: v for k, v in signals.items() if v is not None}}
    total = sum(SUPPORT_WEIGHTS[k] for k in present)
    return sum(SUPPORT_WEIGHTS[k] * min(1.0, max(0.0, v)) for k, v in present.items()) / total


def score_output(
    parsed: ParsedOutput,
    *,
    weight_consistency: float = 0.6,
    weight_adaptability: float = 0.4,
    agreement: float | None = None,
    model_confidence: float | None = None,
    head_confidence: float | None = None,
) -> ScoreParts:
    """Score one parsed output. ``agreement``: the share (0..1) of the other samples for the
    same prompt whose final answer agrees with this one (None for a lone answer);
    ``model_confidence``: the answer's probability from token log-probabilities;
    ``head_confidence``: the metacognition head's probability that the answer is right."""
    claims = [c for s in parsed.steps for c in extract_claims(s.index, s.text)]
    wrong = [i for i, c in enumerate(claims) if not c.correct]
    fixed = _corrections(parsed, claims)
    uncorrected = [i for i in wrong if i not in fixed]
    claim_accuracy = 1.0 if not claims else (len(claims) - len(wrong)) / len(claims)
    claim_check = 1.0 if not uncorrected else 0.5 * claim_accuracy

    answer_agreement = _answer_agreement(parsed, claims)

    corrections = {id(c) for c in fixed.values()}
    first_result: dict[str, Claim] = {}
    contradictions = 0
    for c in claims:
        earlier = first_result.setdefault(c.left, c)
        if earlier.stated_value != c.stated_value and not (id(c) in corrections and not earlier.correct):
            contradictions += 1
    contradiction_free = 1.0 - (contradictions / len(claims) if claims else 0.0)

    if not parsed.steps:
        verification = NO_REASONING
    elif not claims:
        verification = UNVERIFIED
    else:
        verification = 1.0
    signals = {
        "agreement": agreement,
        "model_confidence": model_confidence,
        "head_confidence": head_confidence,
    }
    support = _support(verification, signals)
    consistency = support * claim_check * (0.5 + 0.5 * answer_agreement) * contradiction_free

    named = {s.strategy for s in parsed.steps if s.strategy != "other"}
    strategy_diversity = min(1.0, max(0.0, (len(named) - 1) / 2))
    error_recovery = 1.0 if not wrong else len(fixed) / len(wrong)
    adaptability = min(consistency, 0.5 * error_recovery + 0.5 * strategy_diversity)

    score = weight_consistency * consistency + weight_adaptability * adaptability
    return ScoreParts(
        cognition_score=round(score, 4),
        consistency=round(consistency, 4),
        adaptability=round(adaptability, 4),
        support=round(support, 4),
        verification=verification,
        claim_check=round(claim_check, 4),
        claim_accuracy=round(claim_accuracy, 4),
        answer_agreement=answer_agreement,
        contradiction_free=round(contradiction_free, 4),
        strategy_diversity=round(strategy_diversity, 4),
        error_recovery=round(error_recovery, 4),
        checkable_claims=len(claims),
        wrong_claims=len(wrong),
        uncorrected_wrong_claims=len(uncorrected),
        agreement=agreement,
        model_confidence=model_confidence,
        head_confidence=head_confidence,
        wrong_steps=sorted({claims[i].step for i in wrong}),
    )
