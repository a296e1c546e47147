"""Read the arithmetic in reasoning text and check it, the way people and models write it.

A claim is an equality between two arithmetic expressions, at least one of which computes
something: ``16 - 3 - 4 = 9``, ``$80,000 x 1.5 = $120,000``, ``20% of 50 = 10``,
``(3 + 4) * 2 = 14 = 7 * 2``, and GSM8K's calculator notes ``<<48/2=24>>``. The text is
split into tokens (numbers with their currency, percent, scale and unit words; operators;
parentheses; equals signs; words), runs of arithmetic tokens are cut at the equals signs,
and each side is evaluated by a small recursive-descent parser over ``Fraction`` (never
``eval``), so the check is exact wherever the text is.

The reader would rather miss a claim than invent one (a false alarm sends a right answer to
review and teaches reviewers to distrust the score). It declines:

- expressions touched by a word that does arithmetic (``half of 10 = 5``, ``twice 3 + 1``):
  the visible part is not the whole expression;
- variables (``2x + 3 = 7``), ordinals, clock times, dates, version numbers, and numbers with
  an ambiguous scale word (``3 dozen``, ``2 hundred``);
- adding or subtracting quantities in different units (``2 hours + 30 minutes``) or a
  percent to a plain number (``50 + 10%``);
- restatements and conversions between plain numbers (``1 hour = 60 minutes``).

A stated result is accepted when it equals the computed one; when the computed value has
more digits than the statement shows (``10/3 = 3.33``, ``7/2 = 3``), when it is within the
statement's last digit (rounded or cut off); with ``≈``, "about", "approximately" and the
like, within 5 % or the last significant digit. Operands that look like rounded repeating
decimals (``0.33``, ``6.67``) are also tried as the fraction they round (1/3, 20/3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from fractions import Fraction

NOTE = re.compile(r"<<([^<>]*)>>")
LEADING_ZERO = re.compile(r"^[$€£¥]?\s?0\d")
TOKEN = re.compile(
    r"""
    (?P<time>\d{1,2}:\d{2}(?::\d{2})?(?!\d))
  | (?P<date>\d{4}-\d{1,2}-\d{1,2}\b|\d{1,2}/\d{1,2}/\d{2,4}\b)
  | (?P<version>\d+\.\d+\.\d+)
  | (?P<mixed>\d+[ \t]+\d+/\d+)(?![\d.,/])
  | (?P<cur>[$€£¥]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:\.\.\.|…)?(?P<pct>\s?%)?
  | (?P<frac>[½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])
  | (?P<approx>≈|~=|≃|~)
  | (?P<eq>==?|＝)
  | (?P<op>[+\-−–*/×÷·⋅^])
  | (?P<lp>[(\[])
  | (?P<rp>[)\]])
  | (?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)
  | (?P<newline>\n)
  | (?P<other>\S)
    """,
    re.VERBOSE,
)
UNICODE_FRACTIONS = {
    "½": Fraction(1, 2),
    "⅓": Fraction(1, 3),
    "⅔": Fraction(2, 3),
    "¼": Fraction(1, 4),
    "¾": Fraction(3, 4),
    "⅕": Fraction(1, 5),
    "⅖": Fraction(2, 5),
    "⅗": Fraction(3, 5),
    "⅘": Fraction(4, 5),
    "⅙": Fraction(1, 6),
    "⅚": Fraction(5, 6),
    "⅛": Fraction(1, 8),
    "⅜": Fraction(3, 8),
    "⅝": Fraction(5, 8),
    "⅞": Fraction(7, 8),
}
OPERATORS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "⋅": "*"}
OPERATORS |= {"/": "/", "÷": "/", "^": "^"}
WORD_OPERATORS = {"x": "*", "times": "*", "plus": "+", "minus": "-"}
TWO_WORD_OPERATORS = {("divided", "by"): "/", ("multiplied", "by"): "*"}
SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# Words that make the neighbouring numbers part of a larger expression than the one visible.
ARITHMETIC_WORDS = set(
    "of times twice thrice half double triple quadruple plus minus by per over divided multiplied less more than squared cubed root product sum difference quotient percent x".split()
)
# A number followed by one of these has a scale nobody can read off: no claim.
AMBIGUOUS_UNITS = {"dozen", "dozens", "hundred", "hundreds", "score", "half", "halves", "quarter"}
AMBIGUOUS_UNITS |= {"quarters", "third", "thirds", "fourth", "fourths", "fifth", "fifths", "am", "pm"}
ORDINAL_SUFFIXES = {"st", "nd", "rd", "th"}
NOT_UNITS = {"and", "or", "is", "are", "was", "were", "the", "a", "an", "so", "then", "to", "for", "it"}
NOT_UNITS |= {"that", "which", "we", "he", "she", "they", "you", "i", "if", "but", "equals", "gives"}
NOT_UNITS |= {"because", "since", "as", "when", "while", "after", "before", "from", "with", "at", "on"}
NOT_UNITS |= {"in", "into", "left", "remaining", "total", "this", "these", "those", "there", "now"}
# A number right after one of these is an index ("day 1 * 2", "weeks 1-2"), not a quantity.
LABEL_WORDS = {"day", "days", "week", "weeks", "month", "months", "year", "years", "step", "steps", "part"}
LABEL_WORDS |= {"stage", "phase", "round", "level", "grade", "chapter", "page", "option", "case", "no"}
LABEL_WORDS |= {"number", "game", "item", "room", "floor", "row", "line", "question", "problem", "test"}
QUANTIFIERS = {
    "every",
    "each",
    "per",
    "a",
    "one",
    "that",
    "this",
    "same",
    "the",
    "some",
    "first",
    "last",
    "next",
}
CURRENCIES = {"$", "€", "£", "¥"}
# After a stated result, these make it an operand of more arithmetic ("= 5 times as many").
END_WORDS = {"times", "plus", "minus", "x", "divided", "multiplied", "squared", "cubed"}
FUNCTION_SIGNS = {"√", "∛", "!", "²", "³"}
APPROX_WORDS = {"about", "approximately", "approx", "roughly", "around", "nearly", "almost"}
MAX_UNIT_WORDS = 2
DIMENSIONS = {u: "time" for u in "second sec minute min hour hr day week month year".split()}
DIMENSIONS |= {u: "length" for u in "mm cm meter metre km inch foot feet ft yard yd mile".split()}
DIMENSIONS |= {u: "mass" for u in "gram kg kilogram pound lb ounce oz ton".split()}
DIMENSIONS |= {u: "volume" for u in "ml liter litre gallon quart pint cup tablespoon teaspoon".split()}
DIMENSIONS |= {
    u: "money" for u in ("$", "€", "£", "¥", "cent", "dollar", "penny", "pennie", "nickel", "dime")
}
APPROX_RELATIVE = Fraction(5, 100)
REPEATING_DENOMINATORS = (3, 6, 7, 9, 12)
MAX_EXPONENT = 12


@dataclass
class Tok:
    kind: str  # num | op | lp | rp | eq | word | other
    text: str
    start: int
    end: int
    value: Fraction = Fraction(0)
    decimals: int = 0  # digits after the point as written (the statement's precision)
    percent: bool = False
    scale: int = 1  # "1.5 million": applied unless a side is read without scales
    fraction: bool = False  # "2/3" written without spaces: one number, but a computation
    unit: str = ""
    poisoned: bool = False  # a number that must not take part in a claim
    approx: bool = False  # an equals sign stated as approximate
    attached: bool = False  # no space before this token


@dataclass(frozen=True)
class CheckedClaim:
    """One equality the text states, with what the arithmetic says about it."""

    left: str  # normalised left side, e.g. "16 - 3 - 4"
    stated: str  # normalised right side, e.g. "9"
    correct: bool
    computed: Fraction  # the left side's value
    stated_value: Fraction  # the right side's value (what the text concluded)
    approximate: bool = False
    start: int = 0  # offset of the claim in the text, for ordering
    from_note: bool = False


@dataclass
class _Segment:
    toks: list[Tok]
    incomplete: bool = False
    values: dict[str, Fraction | None] = field(default_factory=dict)


def _number(m: re.Match[str]) -> Tok:
    raw = m.group("num")
    digits = raw.replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return Tok(
        "num",
        m.group(0),
        m.start(),
        m.end(),
        value=Fraction(digits),
        decimals=decimals,
        percent=bool(m.group("pct")),
        unit=m.group("cur").strip() if m.group("cur") else "",
    )


def _lex(text: str) -> list[Tok]:
    toks: list[Tok] = []
    for m in TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        start, end = m.start(), m.end()
        if kind in ("cur", "num", "pct"):
            tok = _number(m)
        elif kind in ("time", "date", "version"):
            tok = Tok("num", m.group(0), start, end, poisoned=True)
        elif kind == "mixed":
            whole, frac = m.group(0).split()
            num, den = frac.split("/")
            if int(den) == 0 or int(num) >= int(den):
                # "3 1/2" only reads as a mixed number with a proper fraction; otherwise decline.
                tok = Tok("num", m.group(0), start, end, poisoned=True)
            else:
                tok = Tok("num", m.group(0), start, end, value=int(whole) + Fraction(int(num), int(den)))
                tok.decimals = -1  # exact as written
        elif kind == "frac":
            tok = Tok("num", m.group(0), start, end, value=UNICODE_FRACTIONS[m.group(0)], decimals=-1)
        elif kind == "approx":
            tok = Tok("eq", m.group(0), start, end, approx=True)
        elif kind == "op":
            tok = Tok("op", OPERATORS[m.group(0)], start, end)
        else:
            tok = Tok(kind, m.group(0), start, end)
        tok.attached = bool(toks) and toks[-1].end == start
        toks.append(tok)
    return toks


def _merge(toks: list[Tok]) -> list[Tok]:
    """Numbers that are not quantities (identifiers, clock readings) and fractions written
    as one number ("60 / 3/4" divides by three quarters)."""
    for i, tok in enumerate(toks):
        if tok.kind != "num" or tok.poisoned:
            continue
        prev = toks[i - 1] if i else None
        if tok.attached and prev is not None and prev.kind == "word":
            before_word = toks[i - 2] if i >= 2 else None
            if not (prev.text in ("x", "X") and before_word is not None and before_word.kind == "num"):
                tok.poisoned = True  # "D2", "COVID19": part of a name
        if LEADING_ZERO.match(tok.text):
            tok.poisoned = True  # "0900": a clock reading or a code
    for i, tok in enumerate(toks[1:-1], start=1):
        if (
            tok.text == "-"
            and tok.attached
            and toks[i + 1].attached
            and "word" == toks[i - 1].kind == toks[i + 1].kind
        ):
            tok.kind = "other"  # "non-useful": a hyphen
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        if (
            i + 2 < len(toks)
            and tok.kind == "num"
            and toks[i + 1].text == "/"
            and toks[i + 2].kind == "num"
            and toks[i + 1].attached
            and toks[i + 2].attached
            and not (out and out[-1].text == "/" and tok.attached)
            and not (
                i + 4 < len(toks)
                and toks[i + 3].text == "/"
                and toks[i + 3].attached
                and toks[i + 4].kind == "num"
            )
            and not (tok.percent or toks[i + 2].percent or toks[i + 2].unit)
            and not (tok.poisoned or toks[i + 2].poisoned)
            and toks[i + 2].value != 0
        ):
            den = toks[i + 2]
            merged = Tok("num", tok.text + "/" + den.text, tok.start, den.end, unit=tok.unit)
            merged.value = tok.value * tok.scale / (den.value * den.scale)
            merged.decimals, merged.fraction, merged.attached = -1, True, tok.attached
            out.append(merged)
            i += 3
            continue
        out.append(tok)
        i += 1
    return out


def _operand_end(tok: Tok | None) -> bool:
    return tok is not None and tok.kind in ("num", "rp")


def _operand_start(toks: list[Tok], i: int) -> bool:
    if i >= len(toks):
        return False
    tok = toks[i]
    if tok.kind in ("num", "lp"):
        return True
    return tok.kind == "op" and tok.text == "-" and i + 1 < len(toks) and toks[i + 1].kind == "num"


def _times_follows(toks: list[Tok], i: int) -> bool:
    """Whether an "x" before toks[i] multiplies: "20 x 20", "3 x (2 + 1)", not "2x-3"."""
    return i < len(toks) and toks[i].kind in ("num", "lp")


def _shape(toks: list[Tok]) -> list[Tok]:
    """Turn words into what they mean next to numbers: operators, units, scales, markers."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        low = tok.text.lower()
        prev = out[-1] if out else None
        if tok.kind == "word" and prev is not None and prev.kind == "eq" and low in APPROX_WORDS:
            prev.approx = True
            i += 1
            continue
        if tok.kind == "eq" and tok.text == "~" and prev is not None and prev.kind == "eq":
            prev.approx = True
            i += 1
            continue
        if tok.kind == "word" and low in ("equals", "equal") and _operand_end(prev):
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            skip = 2 if nxt is not None and nxt.text.lower() == "to" else 1
            out.append(Tok("eq", "=", tok.start, toks[i + skip - 1].end))
            i += skip
            continue
        if tok.kind == "word" and _operand_end(prev):
            pair = (low, toks[i + 1].text.lower()) if i + 1 < len(toks) else None
            if pair in TWO_WORD_OPERATORS and _operand_start(toks, i + 2):
                out.append(Tok("op", TWO_WORD_OPERATORS[pair], tok.start, toks[i + 1].end))
                i += 2
                continue
            if low in WORD_OPERATORS and (
                _times_follows(toks, i + 1) if low == "x" else _operand_start(toks, i + 1)
            ):
                out.append(Tok("op", WORD_OPERATORS[low], tok.start, tok.end))
                i += 1
                continue
            if (
                low == "of"
                and prev is not None
                and prev.kind == "num"
                and (prev.percent or prev.fraction or prev.decimals == -1)
                and _operand_start(toks, i + 1)
            ):
                out.append(Tok("op", "*", tok.start, tok.end))
                i += 1
                continue
        if tok.kind == "word" and prev is not None and prev.kind == "num" and toks[i - 1] is prev:
            consumed = _attach_words(prev, toks, i)
            if consumed:
                i += consumed
                if i < len(toks) and toks[i].kind in ("num", "lp"):
                    out.append(Tok("other", "", toks[i].start, toks[i].start))  # "169 pounds 2 years"
                continue
        if tok.kind == "op" and tok.text == "/" and prev is not None and prev.kind == "num":
            # "$5/hour": a rate's unit, not a division
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if (
                nxt is not None
                and nxt.kind == "word"
                and nxt.attached
                and nxt.text.lower() not in WORD_OPERATORS
            ):
                prev.unit = f"{prev.unit}/{nxt.text.lower()}"
                prev.poisoned = prev.poisoned or len(nxt.text) == 1  # "24/Y": a variable
                i += 2
                continue
        out.append(tok)
        i += 1
    return out


def _attach_words(num: Tok, toks: list[Tok], i: int) -> int:
    """How many words after a number belong to it (scale, percent, unit); marks what it finds."""
    tok = toks[i]
    low = tok.text.lower()
    stated = i >= 2 and toks[i - 2].kind == "eq"  # "= 26 cents", "= 13th": what the result counts
    follows = toks[i + 1] if i + 1 < len(toks) else None
    if tok.attached and low in ORDINAL_SUFFIXES:
        num.poisoned = not stated
        return 1
    if stated and len(tok.text) == 1 and low != "x" and (follows is None or follows.kind not in ("op", "eq")):
        num.unit = low  # "= 30 m"
        return 1
    if low in AMBIGUOUS_UNITS:
        num.poisoned = True
        return 1
    if low == "percent" or low == "per" and i + 1 < len(toks) and toks[i + 1].text.lower() == "cent":
        num.percent = True
        return 1 if low == "percent" else 2
    if low in SCALES or (tok.attached and low == "k" and num.unit in CURRENCIES):
        num.scale = SCALES.get(low, 1000)
        return 1
    if len(tok.text) == 1 and (tok.attached or low not in ("a", "i")):
        if low == "x" and _times_follows(toks, i + 1):
            return 0  # "20 x 20": handled as an operator
        num.poisoned = True  # "2x + 3", "3 y", "5m": a variable or a unit nobody can tell apart
        return 1
    # Unit words are taken only when arithmetic follows them: "12 hours * 10 = 120".
    j, words = i, list[str]()
    while j < len(toks) and toks[j].kind == "word" and len(words) < MAX_UNIT_WORDS:
        w = toks[j].text.lower()
        if w in NOT_UNITS or w in ARITHMETIC_WORDS or w in APPROX_WORDS:
            break
        words.append(w)
        j += 1
    if j < len(toks) and toks[j].kind == "word" and toks[j].text.lower() == "per" and j + 1 < len(toks):
        if toks[j + 1].kind == "word":
            words += ["per", toks[j + 1].text.lower()]
            j += 2
    while words and j + 1 < len(toks) and toks[j].text == "/" and toks[j].attached:
        if toks[j + 1].kind != "word":
            # "20 inches/5 days": a division; but "/ 5 minutes/100 meters" divides by a rate
            num.poisoned = i >= 2 and toks[i - 2].text == "/"
            num.unit = " ".join([num.unit, *words]).strip()
            return j - i
        words += ["/", toks[j + 1].text.lower()]  # "2 photos/day"
        j += 2
    times = j < len(toks) and toks[j].text.lower() in ("x", "times") and _times_follows(toks, j + 1)
    if words and (stated or times or j < len(toks) and toks[j].kind in ("op", "eq", "rp")):
        num.unit = " ".join([num.unit, *words]).strip()
        return j - i
    return 0


def _incommensurable(a: str | None, b: str | None) -> bool:
    """Sums a reader cannot check by the numbers: hours + minutes, $2 + 50 cents, 50 + 10%.
    Different count nouns add fine (17 sheep + 4 cows = 21 animals)."""
    if (a == "%") != (b == "%"):
        return True
    da, db = DIMENSIONS.get(a or ""), DIMENSIONS.get(b or "")
    return da is not None and da == db and a != b


def _unit_key(unit: str) -> str:
    words = [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in unit.split()]
    return " ".join(words)


class _Unreadable(Exception):
    pass


class _Parser:
    """expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor | '(' expr ')')*;
    factor := ('-'|'+') factor | atom ('^' factor)?; atom := number | '(' expr ')'.

    ``mode`` decides how a leaf is read: "exact", "percent_plain" (20% as 20) or
    "repeating" (0.33 as 1/3). A value carries its unit so that sums across units fail.
    """

    def __init__(self, toks: list[Tok], mode: str) -> None:
        self.toks, self.pos, self.mode = toks, 0, mode

    def parse(self) -> Fraction:
        if not self.toks:
            raise _Unreadable
        value, _ = self.expr()
        if self.pos != len(self.toks):
            raise _Unreadable
        return value

    def peek(self) -> Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def expr(self) -> tuple[Fraction, str | None]:
        value, unit = self.term()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text in "+-":
            self.pos += 1
            rhs, rhs_unit = self.term()
            if _incommensurable(unit, rhs_unit):
                raise _Unreadable
            value = value + rhs if tok.text == "+" else value - rhs
            unit = unit or rhs_unit
        return value, unit

    def term(self) -> tuple[Fraction, str | None]:
        value, unit = self.factor()
        while (tok := self.peek()) is not None and (
            tok.kind == "lp" or tok.kind == "op" and tok.text in "*/"
        ):
            if tok.kind == "op":
                self.pos += 1
            rhs, _ = self.factor()
            if tok.text == "/":
                if rhs == 0:
                    raise _Unreadable
                value /= rhs
            else:
                value *= rhs
            unit = None
        return value, unit

    def factor(self) -> tuple[Fraction, str | None]:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "-":
            self.pos += 1
            value, unit = self.factor()
            return -value, unit
        value, unit = self.atom()
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "^":
            self.pos += 1
            exponent, _ = self.factor()
            if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT or (value == 0 and exponent < 0):
                raise _Unreadable
            value, unit = value ** int(exponent), None
        return value, unit

    def atom(self) -> tuple[Fraction, str | None]:
        tok = self.peek()
        if tok is None:
            raise _Unreadable
        if tok.kind == "lp":
            self.pos += 1
            value, unit = self.expr()
            close = self.peek()
            if close is None or close.kind != "rp":
                raise _Unreadable
            self.pos += 1
            return value, unit
        if tok.kind != "num" or tok.poisoned:
            raise _Unreadable
        self.pos += 1
        value = tok.value * (1 if self.mode == "unscaled" else tok.scale)
        if tok.percent and self.mode != "percent_plain":
            value /= 100
        elif self.mode == "repeating":
            value = _repeating(tok) or value
        unit = "%" if tok.percent else _unit_key(tok.unit) or None
        return value, unit


def _repeating(tok: Tok) -> Fraction | None:
    """The fraction a decimal like 0.33 or 6.67 was rounded from, if it looks like one."""
    if tok.decimals < 2:
        return None
    step = Fraction(1, 10**tok.decimals)
    for q in REPEATING_DENOMINATORS:
        candidate = Fraction(round(tok.value * q), q)
        if candidate.denominator in (1, 2, 4, 5, 8, 10) or candidate == tok.value:
            continue
        if abs(candidate - tok.value) < step:
            return candidate
    return None


def _read(seg: _Segment) -> None:
    for mode in ("exact", "percent_plain", "repeating", "unscaled"):
        try:
            seg.values[mode] = _Parser(seg.toks, mode).parse()
        except (_Unreadable, ZeroDivisionError, OverflowError):
            seg.values[mode] = None


def _plain(seg: _Segment) -> Tok | None:
    """The number when a side is a single number (with an optional sign), else None."""
    toks = seg.toks[1:] if seg.toks and seg.toks[0].kind == "op" and seg.toks[0].text == "-" else seg.toks
    return toks[0] if len(toks) == 1 and toks[0].kind == "num" and not toks[0].fraction else None


def _last_digit(value: Fraction, decimals: int) -> Fraction:
    """The place value of a stated number's last significant digit (33,000 -> 1000)."""
    if decimals > 0:
        return Fraction(1, 10**decimals)
    n, place = abs(int(value)), Fraction(1)
    while n and n % 10 == 0:
        n //= 10
        place *= 10
    return place


def same_value(
    computed: Fraction, stated: Fraction, decimals: int = -1, *, approximate: bool = False
) -> bool:
    """Whether ``stated`` (written with ``decimals`` digits after the point, -1 for exact)
    is a fair statement of ``computed``."""
    if computed == stated:
        return True
    diff = abs(computed - stated)
    if approximate:
        return diff <= max(_last_digit(stated, max(decimals, 0)), APPROX_RELATIVE * abs(computed))
    if decimals < 0:
        return False
    scaled = computed * 10**decimals
    return scaled.denominator != 1 and diff < Fraction(1, 10**decimals)


def _sides_agree(left: _Segment, right: _Segment, approximate: bool) -> bool:
    stated_tok = _plain(right)
    for lmode, rmode in (
        ("exact", "exact"),
        ("percent_plain", "exact"),
        ("exact", "percent_plain"),
        ("repeating", "exact"),
        ("repeating", "repeating"),
        ("unscaled", "unscaled"),
    ):
        a, b = left.values.get(lmode), right.values.get(rmode)
        if a is None or b is None:
            continue
        decimals = -1
        if stated_tok is not None and stated_tok.decimals >= 0:
            shift = 2 if stated_tok.percent and rmode != "percent_plain" else 0
            decimals = stated_tok.decimals + shift
        if same_value(a, b, decimals, approximate=approximate):
            return True
    return False


def _normal(toks: list[Tok]) -> str:
    parts = []
    for tok in toks:
        if tok.kind == "num" and tok.fraction:
            parts.append(re.sub(r"[^\d./]", "", tok.text))
        elif tok.kind == "num":
            parts.append(_format(tok.value * tok.scale) + ("%" if tok.percent else ""))
        else:
            parts.append(tok.text)
    text = " ".join(parts)
    return text.replace("( ", "(").replace(" )", ")")


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if Fraction(repr(as_float)) == value:
        return repr(as_float)
    return f"{value.numerator}/{value.denominator}"


def _segments(run: list[Tok], incomplete_start: bool, incomplete_end: bool) -> list[_Segment]:
    segs: list[_Segment] = [_Segment([])]
    approx: list[bool] = []
    for tok in run:
        if tok.kind == "eq":
            segs.append(_Segment([]))
            approx.append(tok.approx)
        else:
            segs[-1].toks.append(tok)
    first, last = segs[0], segs[-1]
    first.incomplete = incomplete_start
    last.incomplete = incomplete_end
    # A parenthesis opened before the claim or closed after it belongs to the prose around it.
    while first.toks and first.toks[0].kind == "lp" and _depth(first.toks) > 0:
        first.toks.pop(0)
    if (
        first.toks
        and first.toks[0].kind == "op"
        and not (first.toks[0].text == "-" and len(first.toks) > 1 and first.toks[1].attached)
    ):
        first.incomplete = True  # "the apples + 3 = 8": the left operand is a word
    while last.toks and last.toks[-1].kind == "rp" and _depth(last.toks) < 0:
        last.toks.pop()
    if last.toks and last.toks[-1].kind in ("op", "lp"):
        last.incomplete = True  # "= 1/3 * Class C": the expression goes on in words
    for seg, is_approx in zip(segs[1:], approx):
        seg.values["approx"] = Fraction(int(is_approx))
    for seg in segs:
        if not seg.incomplete:
            _read(seg)
    return segs


def _depth(toks: list[Tok]) -> int:
    return sum(1 if t.kind == "lp" else -1 if t.kind == "rp" else 0 for t in toks)


def _cut_before(toks: list[Tok], i: int) -> bool:
    """Whether what precedes a run belongs to its first expression, so that the visible part
    is not the whole of it."""
    if i == 0:
        return False
    before = toks[i - 1]
    low = before.text.lower()
    if before.kind == "word":
        if low == "and" and i >= 2 and toks[i - 2].kind == "num" and toks[i].fraction:
            return True  # "1 and 1/4 cups": a mixed number
        if low in ("of", "by"):
            # "half of 10", "20% of 50", "3 of 4": the multiplier is outside; "a total of 5 + 3" is prose.
            owner = toks[i - 2] if i >= 2 else None
            return owner is not None and (owner.kind == "num" or owner.text.lower() in ARITHMETIC_WORDS)
        first = toks[i]
        index = first.kind == "num" and not first.unit and first.decimals == 0 and first.value < 1000
        quantified = i >= 2 and toks[i - 2].text.lower() in QUANTIFIERS  # "every day 20 + 8"
        return low in ARITHMETIC_WORDS or (low in LABEL_WORDS and index and not quantified)
    if before.text in FUNCTION_SIGNS:
        return True  # "√(144) = 12"
    if i >= 2 and before.text == "," and before.attached and toks[i - 2].kind == "num":
        # "14, 400 / 80": a thousands separator followed by a stray space
        return bool(re.fullmatch(r"\d{3}(\.\d+)?", toks[i].text))
    if i >= 2 and before.text in ",." and toks[i - 2].kind == "op":
        return True  # ".8 + . 84": the expression started before the stray mark
    return False


def _goes_on(toks: list[Tok], j: int) -> bool:
    """Whether the words after a run make its last number an operand ("= 5 times 3", "= 5
    times as many") rather than a result ("= 8 times.")."""
    if j >= len(toks):
        return False
    if toks[j].text in FUNCTION_SIGNS:
        return True
    if toks[j].text.lower() not in END_WORDS:
        return False
    nxt = toks[j + 1] if j + 1 < len(toks) else None
    return nxt is not None and (
        nxt.kind in ("num", "lp") or nxt.text.lower() in ("as", "more", "less", "the")
    )


def _claims_in(toks: list[Tok], from_note: bool) -> list[CheckedClaim]:
    claims = []
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if toks[i].kind in ("num", "op", "lp", "rp", "eq"):
            j = i
            while j < len(toks) and toks[j].kind in ("num", "op", "lp", "rp", "eq"):
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    for i, j in runs:
        run = toks[i:j]
        if not any(t.kind == "eq" for t in run):
            continue
        segs = _segments(
            run,
            incomplete_start=_cut_before(toks, i),
            incomplete_end=_goes_on(toks, j),
        )
        for k in range(len(segs) - 1):
            claim = _pair_claim(segs[k], segs[k + 1], from_note, chained=k > 0)
            if claim is not None:
                claims.append(claim)
    return claims


def _pair_claim(left: _Segment, right: _Segment, from_note: bool, chained: bool) -> CheckedClaim | None:
    if left.incomplete or right.incomplete or not left.toks or not right.toks:
        return None
    computed, stated = left.values.get("exact"), right.values.get("exact")
    if computed is None or stated is None:
        return None
    left_plain, right_plain = _plain(left), _plain(right)
    if left_plain is not None and (right_plain is not None or not chained):
        # A restatement, a conversion ("2 hours = 120 minutes") or a name ("Remaining 10 = ..."):
        # a plain left side is a claim only as a link of a chain ("2 + 3 = 5 = 10 / 2").
        return None
    approximate = bool(right.values.get("approx"))
    if _sides_agree(left, right, approximate):
        correct = True
    elif (
        right_plain is None
        and right.toks[0].kind == "num"
        and _sides_agree(left, _Segment([right.toks[0]], values=_leaf_values(right.toks[0])), approximate)
    ):
        # "3 * 4 = 12 + 5 = 17": a run-on of two steps; the first is stated by the leading 12.
        return CheckedClaim(
            _normal(left.toks),
            _normal(right.toks[:1]),
            True,
            computed,
            right.toks[0].value,
            approximate,
            start=left.toks[0].start,
            from_note=from_note,
        )
    elif _converts_units(left, right):
        return None
    else:
        correct = False
    return CheckedClaim(
        _normal(left.toks),
        _normal(right.toks),
        correct,
        computed,
        stated,
        approximate,
        start=left.toks[0].start,
        from_note=from_note,
    )


def _converts_units(left: _Segment, right: _Segment) -> bool:
    """Whether the stated side is in a unit the computation never names, of a quantity it
    measures ("$0.25 x 10 = 250 cents", "2 hours * 60 = 120 minutes"): a conversion the
    numbers alone cannot check."""

    def units(seg: _Segment) -> set[str]:
        words = {
            w
            for t in seg.toks
            if t.kind == "num" and t.unit
            for w in _unit_key(t.unit).replace("/", " ").split()
        }
        return {w for w in words if w in DIMENSIONS}

    named = units(left)
    return any(DIMENSIONS[u] in {DIMENSIONS[n] for n in named} and u not in named for u in units(right))


def _leaf_values(tok: Tok) -> dict[str, Fraction | None]:
    seg = _Segment([tok])
    _read(seg)
    return seg.values


def check_claims(text: str) -> list[CheckedClaim]:
    """Every arithmetic claim in ``text``, in order, checked. GSM8K calculator notes
    ``<<a*b=c>>`` are read as claims of their own and removed from the prose."""
    claims: list[CheckedClaim] = []
    removed = 0
    for m in NOTE.finditer(text):
        for claim in _claims_in(_shape(_merge(_lex(m.group(1)))), from_note=True):
            claims.append(replace(claim, start=m.start() - removed))  # where it sits in the prose
        removed += m.end() - m.start()
    prose = NOTE.sub("", text)
    claims += _claims_in(_shape(_merge(_lex(prose))), from_note=False)
    seen: set[tuple[str, Fraction]] = set()
    unique = []
    for claim in sorted(claims, key=lambda c: (c.start, c.from_note)):
        key = (claim.left.replace(" ", ""), claim.stated_value)
        if key not in seen:
            seen.add(key)
            unique.append(claim)
    return unique


def numbers(text: str) -> list[tuple[Fraction, int]]:
    """The readable numbers in ``text`` as (value, decimals written), in order (percent as written)."""
    out = []
    for tok in _shape(_merge(_lex(NOTE.sub("", text)))):
        if tok.kind == "num" and not tok.poisoned:
            out.append((tok.value, tok.decimals))
    return out


def evaluate(expression: str) -> Fraction | None:
    """The exact value of one arithmetic expression as people write it, None when unreadable."""
    seg = _Segment([t for t in _shape(_merge(_lex(expression))) if t.kind != "newline"])
    if any(t.kind not in ("num", "op", "lp", "rp") for t in seg.toks):
        return None
    _read(seg)
    return seg.values["exact"]
