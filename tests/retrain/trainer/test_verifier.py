"""The head as a verifier (plain Python: runs with ``pytest -p no:django``)."""

from pathlib import Path

import pytest
import torch

from inference.engine import loading, workload
from inference.engine.metahead import MetaHead, MetaHeadConfig, load_head
from retrain.trainer.verifier import VerifierConfig, auroc, ece, fit_verifier_dir, is_right, verdict_items

TINY = Path(__file__).resolve().parents[3] / "inference" / "engine" / "cogloop_tiny"


def test_auroc_and_ece_on_hand_cases():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert auroc([0.3], [True]) is None
    assert ece([0.95, 0.95], [True, False]) == pytest.approx(0.45)
    assert ece([1.0, 0.0], [True, False]) == pytest.approx(0.0)


def test_answers_are_judged_by_value_and_references_come_from_the_responses():
    assert is_right("Step 1 [deduction]: 3 * 6 = 18\n</think>\n\nThe answer is $18.00.", 18)
    assert not is_right("Step 1 [deduction]: 3 * 6 = 19\n</think>\n\nThe answer is 19.", 18)
    rows = [
        {"prompt": "p1", "chosen": "x\n</think>\n\nThe answer is 34."},
        {"prompt": "p1", "chosen": "x\n</think>\n\nThe answer is 34."},
        {"prompt": "p2", "chosen": "no answer here"},
    ]
    assert verdict_items(rows, limit=10, seed=0) == [{"prompt": "p1", "answer": "34"}]


def test_fitting_saves_a_trained_head_that_says_what_it_measured(tmp_path):
    import shutil

    shutil.copytree(TINY, tmp_path / "m")
    items = [{"prompt": p.prompt, "answer": p.answer} for p in workload.problems(24, seed=3, split="train")]
    torch.manual_seed(0)
    summary = fit_verifier_dir(tmp_path / "m", items, VerifierConfig(samples=1, steps=20, seed=1))
    assert summary["answers"] == 48 and 0 < summary["right"] < 48, summary
    assert summary["trained"] and summary["held_answers"] > 0
    head = load_head(tmp_path / "m")
    assert isinstance(head, MetaHead) and head.config.trained
    model, _ = loading.load_model(tmp_path / "m")
    assert head.config == MetaHeadConfig.for_hidden(model.config.hidden_size, trained=True)
