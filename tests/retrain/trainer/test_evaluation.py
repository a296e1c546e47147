"""The held-out metrics on hand-made outputs: correction steps, strategy diversity, ECE, slices."""

import pytest

from inference.engine.parser import parse_output
from retrain.trainer.evaluate import correction_distances, error_class, expected_calibration_error, summarize


def _row(
    correct, *, slice_="rest", kind="chain", score=0.8, strategies=1, dist=(), uncorrected=0, confidence=None
):
    return {
        "slice": slice_,
        "kind": kind,
        "correct": correct,
        "score": score,
        "strategies": strategies,
        "correction_steps": list(dist),
        "uncorrected": uncorrected,
        "confidence": confidence,
        "wrong_claims": len(dist) + uncorrected,
        "answer_agrees": True,
    }


def test_correction_distance_counts_steps_from_the_error_to_its_fix():
    parsed = parse_output(
        "Step 1 [deduction]: 3 + 4 = 8\n"
        "Step 2 [deduction]: 8 * 2 = 16\n"
        "Step 3 [deduction]: Wait, 3 + 4 = 7, so 7 * 2 = 14\n"
        "Step 4 [deduction]: 14 - 5 = 10\n</think>\n\nThe answer is 10."
    )
    distances, uncorrected = correction_distances(parsed)
    assert distances == [2]  # step 1's error corrected in step 3
    assert uncorrected == 1  # 14 - 5 = 10 is never fixed


def test_an_output_without_errors_has_no_correction_distance():
    assert correction_distances(
        parse_output("Step 1 [deduction]: 2 + 2 = 4\n</think>\n\nThe answer is 4.")
    ) == ([], 0)


def test_ece_of_a_calibrated_and_an_overconfident_head():
    calibrated = [(0.75, True)] * 3 + [(0.75, False)]
    assert expected_calibration_error(calibrated) == pytest.approx(0.0)
    overconfident = [(0.95, True), (0.95, False)]
    assert expected_calibration_error(overconfident) == pytest.approx(0.45)
    assert expected_calibration_error([]) is None
    assert expected_calibration_error([(1.0, True)]) == pytest.approx(0.0)  # 1.0 falls in the last bin


def test_summary_metrics_and_slices():
    rows = [
        _row(True, kind="chain", strategies=1, confidence=0.9),
        _row(False, kind="pattern", strategies=2, dist=[1, 3], uncorrected=1, confidence=0.9),
        _row(True, kind="analogy", slice_="blind_spot", strategies=3),
    ]
    summary = summarize(rows, error_classes={1: error_class(rows[1])})
    assert summary["accuracy"] == summary["overall"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["strategy_diversity"] == pytest.approx(2.0)
    assert summary["correction_steps"] == pytest.approx(2.0)
    assert summary["errors_corrected"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["ece"] == pytest.approx(0.4)  # bin 0.9: accuracy 0.5 vs confidence 0.9
    assert set(summary["slices"]) == {
        "rest",
        "blind_spot",
        "strategy:deduction",
        "strategy:induction",
        "strategy:analogy",
        "error:arithmetic",
    }
    assert summary["slices"]["strategy:induction"]["accuracy"] == 0.0
    assert summary["slices"]["blind_spot"]["ece"] is None  # no confidences there: absent, not 0


def test_error_classes_as_the_checker_sees_them():
    assert error_class(_row(True)) is None
    assert error_class(_row(False, dist=[1])) == "arithmetic"
    assert error_class({**_row(False), "answer_agrees": False}) == "inconsistent_answer"
    assert error_class(_row(False)) == "wrong_operation"


def test_held_out_answers_match_their_reference_by_value():
    from retrain.trainer.evaluate import answers_match

    assert answers_match("The answer is $18.00.", "18")
    assert answers_match("The answer is 1,800 dollars.", 1800)
    assert not answers_match("The answer is 19.", "18")
    assert not answers_match(None, "18")
