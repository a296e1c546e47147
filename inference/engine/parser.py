"""Split a model's raw text into reasoning steps and an answer.

Handles the three shapes a reasoning model produces:

- R1 through its chat template: the prompt ends with ``<think>\\n``, so the generated text
  holds only ``</think>``; an explicit ``<think>`` is accepted too.
- The tiny model's numbered lines ``Step k [strategy]: text``.
- R1's free paragraphs (blank-line separated), whose strategy is guessed from cue words.

Text with no ``</think>`` at all is all reasoning and no answer when it reads like steps,
and all answer otherwise (a model that did not think).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

STEP_LINE = re.compile(r"^\s*Step\s+(\d+)\s*(?:\[(\w+)\])?\s*:\s*(.*)$", re.IGNORECASE)
ANSWER_NUMBER = re.compile(
    r"\\boxed\{\s*(-?\d+(?:\.\d+)?)\s*\}|answer\s+is\s*:?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE
)
ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# The strategy of a reasoning step: one definition for the parser, the head, the review UI and training.
STRATEGIES = ("induction", "deduction", "analogy", "other")

# Cue words for free-text steps, checked in this order. Deliberately few: a wrong guess is
# shown to reviewers as a prediction, never used as a label.
STRATEGY_CUES = (
    ("analogy", re.compile(r"\b(similar(ly)?|analog\w*|just like|as with|is to)\b", re.I)),
    (
        "induction",
        re.compile(
            r"\b(pattern|each time|every time|in general|generaliz\w*|common difference|trend)\b", re.I
        ),
    ),
    ("deduction", re.compile(r"\b(therefore|thus|so|hence|it follows|=)\b|=", re.I)),
)
SELF_CORRECTION = re.compile(
    r"\b(wait|actually|correction|mistake|let me (re-?check|recheck|verify)|that'?s wrong|on second thought)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedStep:
    index: int
    text: str
    strategy: str  # as written by the model, or guessed from cues
    strategy_source: str  # "explicit" | "cue"
    self_correction: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ParsedOutput:
    reasoning: str
    answer: str
    answer_value: float | None
    steps: list[ParsedStep]
    think_closed: bool

    def steps_as_dicts(self) -> list[dict]:
        return [s.to_dict() for s in self.steps]


def guess_strategy(text: str) -> str:
    for name, cue in STRATEGY_CUES:
        if cue.search(text):
            return name
    return "other"


def _split_reasoning(reasoning: str) -> list[ParsedStep]:
    lines = [ln for ln in reasoning.splitlines() if ln.strip()]
    if any(STEP_LINE.match(ln) for ln in lines):
        steps: list[tuple[str, str | None]] = []
        for ln in lines:
            m = STEP_LINE.match(ln)
            if m:
                steps.append((m.group(3).strip(), (m.group(2) or "").lower() or None))
            elif steps:  # a continuation line belongs to the step above
                text, strat = steps[-1]
                steps[-1] = (f"{text}\n{ln.strip()}", strat)
            else:
                steps.append((ln.strip(), None))
    else:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", reasoning) if p.strip()]
        steps = [(p, None) for p in paragraphs]
    parsed = []
    for i, (text, strat) in enumerate(steps, start=1):
        if strat in STRATEGIES:
            strategy, source = strat, "explicit"
        else:
            strategy, source = guess_strategy(text), "cue"
        parsed.append(ParsedStep(i, text, strategy, source, bool(SELF_CORRECTION.search(text))))
    return parsed


def _answer_value(answer: str) -> float | None:
    m = ANSWER_NUMBER.search(answer)
    if m:
        return float(m.group(1) or m.group(2))
    numbers = ANY_NUMBER.findall(answer)
    return float(numbers[-1]) if numbers else None


def parse_output(raw: str) -> ParsedOutput:
    text = raw.replace("\r\n", "\n")
    if "</think>" in text:
        reasoning, _, answer = text.partition("</think>")
        reasoning = reasoning.replace("<think>", "")
        think_closed = True
    else:
        stripped = text.replace("<think>", "")
        looks_like_steps = any(STEP_LINE.match(ln) for ln in stripped.splitlines())
        if "<think>" in text or looks_like_steps:
            reasoning, answer = stripped, ""
        else:
            reasoning, answer = "", stripped
        think_closed = False
    reasoning, answer = reasoning.strip(), answer.strip()
    return ParsedOutput(
        reasoning=reasoning,
        answer=answer,
        answer_value=_answer_value(answer) if answer else None,
        steps=_split_reasoning(reasoning) if reasoning else [],
        think_closed=think_closed,
    )
