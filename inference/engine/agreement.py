"""Self-consistency: how far the answers sampled together for one prompt agree.

A sample's agreement is the share of the *other* samples in its group whose final answer
normalises to the same value: 1.0 when every other sample says the same, 0.0 when none
does. A sample without a final answer has no agreement (None) and agrees with nobody.

The final answer of an answer text is, in this order: the last ``\\boxed{...}``, the number
after the last "answer is", the last number in the text. A number is normalised to its
exact value, so ``18``, ``$18.00``, ``18 dollars``, ``18.0`` and ``\\boxed{18}`` agree, as
do ``1,800``, ``1{,}800`` and ``1800``; ``3/4``, ``\\frac{3}{4}`` and ``0.75`` agree too. An
answer holding no number is compared as text (case, markup, spacing and closing
punctuation aside), so "Yes." and "yes" agree.

The majority answer is the value held by more samples than any other, and by at least two:
a tie or a group where every sample differs has none.

Plain Python (no Django, no torch): the web role scores posted samples with it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

# A thousands separator as text and LaTeX write it: "1,800", "1{,}800", "1\,800".
_SEP = r"(?:,|\{,\}|\\,)"
NUMBER = re.compile(
    r"(?<![\w.])"
    r"(?P<sign>[-−])?(?:\\?\$|€|£)?(?P<sign2>[-−])?"
    rf"(?P<int>\d{{1,3}}(?:{_SEP}\d{{3}})+(?!\d)|\d+)"
    r"(?P<dec>\.\d+)?"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
LATEX_FRACTION = re.compile(r"(?P<sign>[-−])?\\[dt]?frac\s*\{\s*(?P<num>\d+)\s*\}\s*\{\s*(?P<den>\d+)\s*\}")
ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*:?\s*")
BOXED = re.compile(r"\\boxed\s*\{")
_MARKUP = re.compile(r"\\text\w*\s*\{([^{}]*)\}|\\[a-z]+|[*_`$]")
_CLOSING = " \t\n.,;:!?\"'()[]{}"


def _boxed_span(text: str) -> tuple[int, int] | None:
    """The inside of the last ``\\boxed{...}``, braces balanced."""
    matches = list(BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return start, i
    return start, len(text)  # an unclosed box (a cut-off answer) runs to the end


def _last_number(text: str, start: int, end: int) -> tuple[int, int, Fraction] | None:
    """The last number in ``text[start:end]`` (a LaTeX fraction counts as one)."""
    found: tuple[int, int, Fraction] | None = None
    for m in NUMBER.finditer(text, start, end):
        value = _value(m)
        if value is not None:
            found = (m.start(), m.end(), value)
    for m in LATEX_FRACTION.finditer(text, start, end):
        # the fraction holds the plain numbers found inside it: it wins when it ends last
        if int(m.group("den")) and (found is None or m.end() >= found[1]):
            value = Fraction(int(m.group("num")), int(m.group("den")))
            found = (m.start(), m.end(), -value if m.group("sign") else value)
    return found


def _value(m: re.Match[str]) -> Fraction | None:
    digits = re.sub(_SEP, "", m.group("int")) + (m.group("dec") or "")
    value = Fraction(digits)
    if m.group("den"):
        den = Fraction(m.group("den"))
        if den == 0:
            return None
        value /= den
    return -value if (m.group("sign") or m.group("sign2")) else value


def final_number(answer: str) -> tuple[int, int, Fraction] | None:
    """Where the final numeric answer is in ``answer`` (start, end) and its exact value."""
    boxed = _boxed_span(answer)
    if boxed is not None:
        return _last_number(answer, *boxed)
    after = list(ANSWER_IS.finditer(answer))
    if after:
        m = NUMBER.match(answer, after[-1].end()) or LATEX_FRACTION.match(answer, after[-1].end())
        if m:
            number = _last_number(answer, m.start(), m.end())
            if number is not None:
                return number
    return _last_number(answer, 0, len(answer))


def _canonical(value: Fraction) -> str:
    """An exact value as text: ``18``, ``2.5``, ``-1/3`` (a decimal only when it is exact)."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    digits = str(abs(value.numerator * 10**places // value.denominator)).rjust(places + 1, "0")
    return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"


def _normalised_text(text: str) -> str:
    text = _MARKUP.sub(lambda m: m.group(1) or "", text)
    text = " ".join(text.lower().split()).strip(_CLOSING)
    return _ANSWER_PREFIX.sub("", text).strip(_CLOSING)


def normalise_answer(answer: str | None) -> str | None:
    """The value an answer text gives, as comparable text; None when it gives none."""
    if not answer or not answer.strip():
        return None
    number = final_number(answer)
    if number is not None:
        return _canonical(number[2])
    boxed = _boxed_span(answer)
    text = _normalised_text(answer[boxed[0] : boxed[1]] if boxed else answer)
    return text or None


def agreement_scores(answers: Sequence[str | None]) -> list[float | None]:
    """For each answer, the share of the other answers whose normalised value equals its own."""
    values = [normalise_answer(a) for a in answers]
    counts = Counter(v for v in values if v is not None)
    others = len(values) - 1
    return [None if v is None or others == 0 else (counts[v] - 1) / others for v in values]


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """The normalised value most answers give, when more give it than any other and at least two."""
    ranked = Counter(v for v in (normalise_answer(a) for a in answers) if v is not None).most_common(2)
    if not ranked or ranked[0][1] < 2 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]
