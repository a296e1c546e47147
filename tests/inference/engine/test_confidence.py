"""The model's confidence from token log-probabilities (plain Python: no database, no model)."""

import math

import pytest

from inference.engine.confidence import answer_confidence


def _split(pairs):
    return [t for t, _ in pairs], [lp for _, lp in pairs]


def test_a_final_number_counts_the_probability_of_all_its_digits():
    tokens, logprobs = _split(
        [
            ("40 - 7 = 33", -2.0),  # reasoning: not the answer
            ("\n", 0.0),
            ("</think>", -0.1),
            ("\n\n", -0.5),  # whitespace: not counted
            ("The answer is", -0.01),
            (" $", -0.7),  # formatting: not part of the value
            ("1", -0.2),
            (",", -0.3),
            ("8", -0.1),
            ("00", 0.0),
            (".", 0.0),
        ]
    )
    assert answer_confidence(tokens, logprobs) == pytest.approx(math.exp(-0.2 - 0.1 - 0.0))


def test_a_worded_answer_takes_the_geometric_mean_of_its_tokens():
    tokens, logprobs = _split(
        [("reasoning", -3.0), ("</think>", 0.0), ("\n", -1.0), ("Yes", -0.4), (".", 0.0)]
    )
    assert answer_confidence(tokens, logprobs) == pytest.approx(math.exp(-0.2))


def test_text_without_think_is_split_like_the_parser_splits_it():
    # a cut-off generation: steps that never closed their thinking hold no answer
    steps, steps_lp = _split([("Step 1 [deduction]: 40 - 7 = ", -0.1), ("3", -0.2)])
    assert answer_confidence(steps, steps_lp) is None
    # an answer with no thinking at all is all answer
    plain, plain_lp = _split([("The answer is ", -0.1), ("3", -0.5), ("3", -0.1)])
    assert answer_confidence(plain, plain_lp) == pytest.approx(math.exp(-0.6))


def test_no_logprobs_or_no_answer_gives_none():
    assert answer_confidence([], []) is None
    assert answer_confidence(["a"], []) is None
    assert answer_confidence(["x", "</think>", "\n"], [-1.0, -0.1, 0.0]) is None
