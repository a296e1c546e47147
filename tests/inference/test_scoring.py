import pytest

from inference.engine.parser import parse_output
from inference.engine.scoring import score_output

CORRECT = "Step 1 [deduction]: 37 + 5 = 42\nStep 2 [deduction]: 42 - 8 = 34\nStep 3 [deduction]: 34 + 2 = 36\n</think>\n\nThe answer is 36."
ONE_WRONG = "Step 1 [deduction]: 37 + 5 = 42\nStep 2 [deduction]: 42 - 8 = 50\nStep 3 [deduction]: 50 + 2 = 52\n</think>\n\nThe answer is 52."


def score(raw):
    return score_output(parse_output(raw))


def test_correct_chain_beats_same_chain_with_one_wrong_step():
    good, bad = score(CORRECT), score(ONE_WRONG)
    assert good.cognition_score > bad.cognition_score
    assert good.claim_accuracy == 1.0
    assert bad.claim_accuracy == pytest.approx(2 / 3, abs=1e-3)
    assert bad.wrong_steps == [2]
    assert bad.error_recovery == 0.0


def test_correct_single_strategy_chain_value():
    parts = score(CORRECT)
    # consistency 1, diversity 0 (one strategy), recovery 1 (no error): 0.6*1 + 0.4*0.5
    assert parts.consistency == 1.0
    assert parts.adaptability == 0.5
    assert parts.cognition_score == pytest.approx(0.8)


def test_answer_contradicting_reasoning_loses():
    contradicting = CORRECT.replace("The answer is 36.", "The answer is 40.")
    a, b = score(CORRECT), score(contradicting)
    assert b.answer_agreement == 0.0
    assert b.consistency == pytest.approx(0.5)
    assert b.cognition_score < a.cognition_score


def test_missing_answer_counts_as_disagreement():
    parts = score("Step 1 [deduction]: 2 + 2 = 4")
    assert parts.answer_agreement == 0.0


def test_self_correction_recovers_adaptability():
    corrected = (
        "Step 1 [deduction]: 42 - 8 = 50\nStep 2 [deduction]: wait, that is wrong: 42 - 8 = 34\n"
        "</think>\n\nThe answer is 34."
    )
    plain_wrong = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."
    a, b = score(corrected), score(plain_wrong)
    assert a.error_recovery == 1.0 and b.error_recovery == 0.0
    assert a.contradiction_free == 1.0  # the later value is a marked correction
    assert a.cognition_score > b.cognition_score


def test_contradiction_without_correction_marker():
    parts = score("Step 1 [deduction]: 3 + 4 = 7\nStep 2 [deduction]: 3 + 4 = 8\n</think>\n8")
    assert parts.contradiction_free == 0.5


def test_strategy_diversity_rewards_switches():
    three = "Step 1 [analogy]: 9 - 3 = 6\nStep 2 [induction]: 6 - 3 = 3\nStep 3 [deduction]: 12 + 6 = 18\n</think>\n18"
    one = "Step 1 [deduction]: 9 - 3 = 6\nStep 2 [deduction]: 6 - 3 = 3\nStep 3 [deduction]: 12 + 6 = 18\n</think>\n18"
    assert score(three).strategy_diversity == 1.0
    assert score(one).strategy_diversity == 0.0
    assert score(three).cognition_score > score(one).cognition_score


def test_weights_are_applied():
    parts = score_output(parse_output(CORRECT), weight_consistency=1.0, weight_adaptability=0.0)
    assert parts.cognition_score == 1.0


def test_no_checkable_claims_is_not_an_error():
    parts = score("Step 1 [deduction]: the list grows\n</think>\nThe answer is unclear")
    assert parts.claim_accuracy == 1.0 and parts.checkable_claims == 0
