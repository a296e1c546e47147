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


# --- what each part measures, and what cannot move the score ---

GSM_RIGHT = (
    "Natalia sold 48/2 = 24 clips in May.\n\nNatalia sold 48+24 = 72 clips altogether in April and May."
    "\n</think>\n\nThe answer is 72."
)
GSM_WRONG = (
    GSM_RIGHT.replace("48/2 = 24", "48/2 = 26").replace("48+24 = 72", "48+26 = 74").replace("is 72", "is 74")
)
UNCHECKABLE_WRONG = (
    "Natalia sold half as many in May, so altogether she sold a lot.\n</think>\n\nThe answer is 7."
)


def test_real_text_right_passes_and_wrong_is_captured():
    right, wrong = score(GSM_RIGHT), score(GSM_WRONG)
    assert right.cognition_score >= 0.6 and right.verification == 1.0
    assert wrong.cognition_score < 0.6 and wrong.wrong_steps == [1]


def test_one_uncorrected_error_halves_claim_check():
    parts = score(ONE_WRONG)
    assert parts.uncorrected_wrong_claims == 1
    assert parts.claim_check == pytest.approx(0.5 * 2 / 3, abs=1e-3)


def test_answer_matching_an_intermediate_value_half_agrees():
    parts = score(CORRECT.replace("The answer is 36.", "The answer is 34."))
    assert parts.answer_agreement == 0.5


def test_empty_verify_step_does_not_lift_a_wrong_answer():
    padded = ONE_WRONG.replace("</think>", "Step 4 [deduction]: Wait, let me verify.\n</think>")
    assert score(padded).cognition_score <= score(ONE_WRONG).cognition_score
    assert score(padded).cognition_score < 0.6
    assert score(padded).error_recovery == 0.0  # a cue word alone corrects nothing


def test_strategy_tags_do_not_lift_a_wrong_answer():
    tagged = ONE_WRONG.replace("Step 1 [deduction]", "Step 1 [analogy]").replace(
        "Step 3 [deduction]", "Step 3 [induction]"
    )
    parts = score(tagged)
    assert parts.strategy_diversity == 1.0
    assert parts.cognition_score < 0.6
    assert parts.adaptability <= parts.consistency


def test_correction_counts_only_when_it_states_the_right_result():
    recovered = "Step 1 [deduction]: 42 - 8 = 50\nStep 2 [deduction]: wait, 42 - 8 = 34\n</think>\n\nThe answer is 34."
    cue_only = "Step 1 [deduction]: 42 - 8 = 50\nStep 2 [deduction]: wait, let me check again.\n</think>\n\nThe answer is 50."
    assert score(recovered).error_recovery == 1.0 and score(recovered).uncorrected_wrong_claims == 0
    assert score(recovered).cognition_score >= 0.6
    assert score(cue_only).error_recovery == 0.0 and score(cue_only).cognition_score < 0.6


def test_nothing_checkable_is_a_neutral_prior_below_the_threshold():
    parts = score(UNCHECKABLE_WRONG)
    assert parts.verification == 0.5 and parts.checkable_claims == 0
    assert parts.cognition_score < 0.6 < score(GSM_RIGHT).cognition_score


def test_no_reasoning_scores_low():
    parts = score("hi")
    assert parts.verification == 0.2
    assert parts.cognition_score < 0.3


def test_agreement_across_samples_moves_the_score():
    alone = score_output(parse_output(GSM_RIGHT))
    agreed = score_output(parse_output(GSM_RIGHT), agreement=1.0)
    outvoted = score_output(parse_output(GSM_RIGHT), agreement=0.0)
    assert agreed.cognition_score == alone.cognition_score
    assert outvoted.cognition_score < 0.6 and outvoted.support == 0.5
    assert outvoted.agreement == 0.0


def test_agreement_can_lift_an_unverifiable_answer_but_not_a_wrong_one():
    assert score_output(parse_output(UNCHECKABLE_WRONG), agreement=1.0).cognition_score >= 0.6
    assert score_output(parse_output(GSM_WRONG), agreement=1.0).cognition_score < 0.6


def test_confidences_are_weighed_in_when_present():
    base = score_output(parse_output(GSM_RIGHT))
    low = score_output(parse_output(GSM_RIGHT), model_confidence=0.1, head_confidence=0.1)
    assert low.cognition_score < base.cognition_score
    assert low.support == pytest.approx((1.0 + 0.5 * 0.1 + 0.5 * 0.1) / 2.0, abs=1e-4)
    assert low.to_dict()["head_confidence"] == 0.1


def test_workload_answers_stay_on_their_side_of_the_threshold():
    import re

    from inference.engine import workload

    for p in workload.problems(200, seed=1, split="eval"):
        text = p.response_text()
        assert score(text).cognition_score >= 0.6
        last = list(re.finditer(r"= (\d+)", text.split("</think>")[0]))[-1]
        wrong = text[: last.start(1)] + str(int(last.group(1)) + 16) + text[last.end(1) :]
        assert score(wrong).cognition_score < 0.6
    for p in workload.problems(100, seed=1, split="eval", planted=True):
        if p.slice == workload.BLIND_SPOT:
            assert score(p.response_text()).cognition_score < 0.6
