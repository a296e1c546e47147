"""Self-consistency of sampled answers (plain Python: no database, no model)."""

import pytest

from inference.engine.agreement import agreement_scores, final_number, majority_answer, normalise_answer


@pytest.mark.parametrize(
    "answer",
    [
        "18",
        "$18.00",
        "18 dollars",
        "18.0",
        "The answer is 18.",
        "The answer is $18, since 9 * 2 = 18.",
        "So she pays 3 * 6 = 18 dollars in total.\n\n**Final Answer**\n\\boxed{18}",
        "\\boxed{\\$18}",
        "\\boxed{18 \\text{ dollars}}",
        "18%",
    ],
)
def test_forms_of_eighteen_normalise_alike(answer):
    assert normalise_answer(answer) == "18"


@pytest.mark.parametrize(
    "answer, value",
    [
        ("1,800", "1800"),
        ("1800", "1800"),
        ("1{,}800", "1800"),
        ("\\boxed{1\\,800}", "1800"),
        ("$1,800.00", "1800"),
        ("1,234,567.5", "1234567.5"),
        ("0.75", "0.75"),
        ("3/4", "0.75"),
        ("\\boxed{\\frac{3}{4}}", "0.75"),
        ("\\boxed{\\dfrac{1}{3}}", "1/3"),
        ("-7", "-7"),
        ("−7", "-7"),
        ("-$2.50", "-2.5"),
        ("The answer is 33. Check: 40 - 7 = 33", "33"),
        ("The answer is 12 (not 13 as in step 2).", "12"),
        ("We get 5 - 3 = 2", "2"),
        ("40/2 = 20", "20"),
    ],
)
def test_numbers_normalise_to_their_exact_value(answer, value):
    assert normalise_answer(answer) == value


@pytest.mark.parametrize(
    "answer, value",
    [
        ("Yes.", "yes"),
        ("The answer is: Yes", "yes"),
        ("\\boxed{\\text{Paris}}", "paris"),
        ("**Blue**", "blue"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_answers_without_a_number_compare_as_text(answer, value):
    assert normalise_answer(answer) == value


def test_the_final_number_is_located_in_the_text():
    text = "Step: 2 + 2 = 4, so the answer is $1,800 dollars."
    start, end, value = final_number(text)
    assert text[start:end] == "$1,800" and value == 1800
    assert final_number("no number here") is None


def test_agreement_is_the_share_of_the_other_samples_that_agree():
    answers = ["18", "$18.00", "The answer is 18 dollars.", "20", None]
    assert agreement_scores(answers) == [0.5, 0.5, 0.5, 0.0, None]
    assert agreement_scores(["1,800", "1800"]) == [1.0, 1.0]
    assert agreement_scores(["7", "8"]) == [0.0, 0.0]
    assert agreement_scores(["7"]) == [None]  # nobody to agree with
    assert agreement_scores([]) == []


def test_the_majority_needs_more_samples_than_any_other_value_and_at_least_two():
    assert majority_answer(["18", "$18.00", "20"]) == "18"
    assert majority_answer(["18", "20", "21"]) is None
    assert majority_answer(["18", "18", "20", "20"]) is None
    assert majority_answer([None, None, "3"]) is None
    assert majority_answer(["yes", "Yes.", "no"]) == "yes"
