import json
from fractions import Fraction
from pathlib import Path

import pytest

from inference.engine.claims import check_claims, evaluate, same_value

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "gsm8k_excerpt.jsonl"


def verdicts(text: str) -> list[bool]:
    return [c.correct for c in check_claims(text)]


@pytest.mark.parametrize(
    ("right", "wrong"),
    [
        ("16 - 3 - 4 = 9", "16 - 3 - 4 = 10"),  # a chain, read whole
        ("2 + 3 * 4 = 14", "2 + 3 * 4 = 20"),  # precedence
        ("(3 + 4) * 2 = 14", "(3 + 4) * 2 = 11"),
        ("80,000*1.5=120,000", "80,000*1.5=12,000"),  # thousands separators
        ("0.2 x 50 = 10", "0.2 x 50 = 12"),  # x for times
        ("20 × 3 = 60", "20 × 3 = 63"),
        ("4 · 5 = 20", "4 · 5 = 25"),
        ("12 ÷ 4 = 3", "12 ÷ 4 = 4"),
        ("20 x 20/100 = 4", "20 x 20/100 = 5"),
        ("60 / 3/4 = 80", "60 / 3/4 = 20"),  # a written fraction is one number
        ("½ * 10 = 5", "½ * 10 = 6"),
        ("2 1/2 * 4 = 10", "2 1/2 * 4 = 9"),  # a mixed number
        ("20% of 50 = 10", "20% of 50 = 12"),
        ("50 * 20% = 10", "50 * 20% = 20"),
        ("30/50 = 60%", "30/50 = 70%"),
        ("0.2 * 100 = 20%", "0.2 * 100 = 25%"),  # a percent stated as its number
        ("$12 * 5 = $60", "$12 * 5 = $65"),
        ("5kg + 3kg = 8kg", "5kg + 3kg = 9kg"),
        ("12 hours * $10 = $120", "12 hours * $10 = $130"),
        ("7 starfish * 5 arms/starfish = 35 arms", "7 starfish * 5 arms/starfish = 32 arms"),
        ("2 + 3 = 5 = 10 / 2", "2 + 3 = 5 = 10 / 3"),  # chains of equalities
        ("3 * 4 = 12 + 5 = 17", "3 * 4 = 12 + 5 = 18"),  # a run-on of two steps
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.", "Natalia sold 48/2 = <<48/2=25>>25 clips."),
        ("<<48/2=24>>", "<<48/2=25>>"),  # a calculator note alone
        ("10/3 ≈ 3.3", "10/3 ≈ 4.3"),  # stated rounding
        ("10/3 = about 3", "10/3 = about 5"),
        ("10/3 = 3.33", "10/3 = 3.53"),  # the statement's precision
        ("-5 + 3 = -2", "-5 + 3 = 2"),  # negative numbers
        ("2 times 200 equals 400", "2 times 200 equals 300"),
        ("$1.5 million + $500,000 = $2 million", "$1.5 million + $500,000 = $3 million"),
    ],
)
def test_each_form_is_read_and_checked(right, wrong):
    assert verdicts(right) and all(verdicts(right))
    assert False in verdicts(wrong)


@pytest.mark.parametrize(
    "text",
    [
        "It takes 3-4 hours to get there.",  # a range
        "On 12/25/2020 the store opened.",  # a date
        "Meet at 10:30 and leave at 11:15.",
        "1/2 of the cake = 4 slices",  # words between the numbers
        "half of 10 = 6",  # the multiplier is a word
        "twice 3 + 1 = 4",
        "2x + 3 = 7",  # algebra
        "2 hours + 30 minutes = 2.5 hours",  # sums across units
        "50 + 10% = 55",
        "$2.50 - $2.24 = 26 cents",  # a conversion
        "1 hour = 60 minutes",  # a restatement
        "3 dozen * 12 = 36",  # an ambiguous scale
        "Day 1 * 2 = 20 pages",  # an index, not a quantity
        "6 + 4 = 10pm",  # a clock time
        "5 + 3 = 8 times 2",  # the result is an operand of more arithmetic
        "23 = 1/2 * (T + M)",  # the expression goes on in letters
        "She has 5 apples and 3 pears.",
    ],
)
def test_ambiguous_text_makes_no_wrong_claim(text):
    assert False not in verdicts(text)


def test_list_numbering_is_not_an_operand():
    assert verdicts("1. 5 + 3 = 8") == [True]


def test_claims_carry_what_the_arithmetic_says():
    (claim,) = check_claims("So 42 - 8 = 50 apples.")
    assert claim.left == "42 - 8" and claim.stated == "50"
    assert claim.computed == 34 and claim.stated_value == 50 and not claim.correct


def test_note_and_prose_stating_the_same_claim_count_once():
    assert len(check_claims("Natalia sold 48/2 = <<48/2=24>>24 clips.")) == 1


def test_same_value_tolerates_only_what_the_statement_rounds():
    assert same_value(Fraction(10, 3), Fraction("3.33"), 2)
    assert same_value(Fraction(7, 2), Fraction(3), 0)  # 3.5 stated as a whole number
    assert not same_value(Fraction(34), Fraction(35), 0)  # an exact result has no slack
    assert same_value(Fraction(47), Fraction(50), 0, approximate=True)


def test_evaluate_never_runs_code():
    assert evaluate("2 * (3 + 4)") == 14
    assert evaluate("__import__('os')") is None
    assert evaluate("10 / 0") is None
    assert evaluate("2 ^ 1000") is None  # bounded exponents


def test_no_false_alarm_on_correct_gsm8k_excerpt():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert len(rows) == 40
    for row in rows:
        for claim in check_claims(row["answer"]):
            assert claim.correct, (row["answer"], claim)
