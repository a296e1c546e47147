"""Corrections are rendered in the style the trained model writes (plain Python)."""

import json

import pytest

from inference.engine import chat

STEPS = [chat.Step("deduction", "42 - 8 = 34"), chat.Step("other", "So 34 is left.")]


def test_step_lines_and_paragraphs():
    assert chat.render_response(STEPS, 34, style=chat.STEP_LINES) == (
        "Step 1 [deduction]: 42 - 8 = 34\nStep 2 [other]: So 34 is left.\n</think>\n\nThe answer is 34."
    )
    assert chat.render_response(STEPS, "The answer is 34.", style=chat.PARAGRAPHS) == (
        "42 - 8 = 34\n\nSo 34 is left.\n</think>\n\nThe answer is 34."
    )
    with pytest.raises(ValueError, match="unknown reasoning style"):
        chat.render_response(STEPS, 34, style="bullets")


def test_the_model_directory_names_its_style_and_r1_paragraphs_are_the_default(tmp_path):
    assert chat.reasoning_style(tmp_path) == chat.PARAGRAPHS
    (tmp_path / chat.STYLE_FILE).write_text(json.dumps({"reasoning_style": "step_lines"}))
    assert chat.reasoning_style(tmp_path) == chat.STEP_LINES
    (tmp_path / chat.STYLE_FILE).write_text(json.dumps({"reasoning_style": "haiku"}))
    with pytest.raises(ValueError, match="haiku"):
        chat.reasoning_style(tmp_path)


def test_the_shipped_model_writes_step_lines():
    from pathlib import Path

    tiny = Path(__file__).resolve().parents[3] / "inference" / "engine" / "cogloop_tiny"
    assert chat.reasoning_style(tiny) == chat.STEP_LINES


def test_self_corrected_steps_put_the_fix_right_after_the_first_changed_step():
    original = [chat.Step("deduction", "42 - 8 = 50"), chat.Step("deduction", "50 + 1 = 51")]
    corrected = [chat.Step("deduction", "42 - 8 = 34"), chat.Step("deduction", "34 + 1 = 35")]
    assert chat.self_corrected_steps(original, corrected) == [
        original[0],
        chat.Step("deduction", "Wait, that is wrong: 42 - 8 = 34"),
        corrected[1],
    ]
    # Nothing the original had was changed (only a step added): nothing to take back.
    assert chat.self_corrected_steps(original[:1], [original[0], corrected[1]]) == [original[0], corrected[1]]
    assert chat.self_corrected_steps(original, original) == original
