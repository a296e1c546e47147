"""Chat template and prompt rendering: the one place that turns a prompt and a reasoning into text.

Every caller (generation, the head's reading, training data, the demo's workload) renders
through here, so the text a model is trained on is the text it is served with.

- ``prompt_text``: the model's own chat template (R1's ends with ``<think>\\n``).
- ``self_corrected_steps``: a reviewer's correction as a self-correction (wrong step, then
  "Wait, that is wrong: ..."), for training a model to catch its own errors.
- ``render_response``: reasoning steps in the style the model writes (``reasoning_style`` of
  its directory), then ``</think>`` and the answer. R1 writes free paragraphs; cogloop-tiny
  numbered ``Step k [strategy]: text`` lines. A model directory names its style in
  ``cogloop.json`` (``{"reasoning_style": "step_lines"}``); without one it is R1's paragraphs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEP_LINES = "step_lines"
PARAGRAPHS = "paragraphs"
STYLES = (STEP_LINES, PARAGRAPHS)
STYLE_FILE = "cogloop.json"


@dataclass(frozen=True)
class Step:
    strategy: str
    text: str


def prompt_text(tokenizer: Any, prompt: str) -> str:
    text: str = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return text


def encode_pair(tokenizer: Any, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Token ids of the templated prompt and of the response (ending in EOS), separately.

    Encoding them apart keeps the prompt's tokens identical to what generation sees.
    """
    p = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return list(p), list(r)


def render_steps(steps: Iterable[Step]) -> str:
    return "\n".join(f"Step {i} [{s.strategy}]: {s.text}" for i, s in enumerate(steps, start=1))


def render_response(steps: Iterable[Step], answer: object, *, style: str = STEP_LINES) -> str:
    """The text a model generates after the chat template's ``<think>\\n``."""
    return f"{render_reasoning(steps, style=style)}\n</think>\n\n{answer_sentence(answer)}"


def render_reasoning(steps: Iterable[Step], *, style: str) -> str:
    if style == STEP_LINES:
        return render_steps(steps)
    if style == PARAGRAPHS:
        return "\n\n".join(s.text.strip() for s in steps)
    raise ValueError(f"unknown reasoning style {style!r}; one of {', '.join(STYLES)}")


def self_corrected_steps(original: list[Step], corrected: list[Step]) -> list[Step]:
    """A correction written as the model catching its own error: the corrected steps up to the
    first step the reviewer changed, the original (wrong) step, then a marked correction
    ("Wait, that is wrong: 42 - 8 = 34."), then the rest of the corrected steps. Unchanged when
    the reviewer changed no step the original had (only added steps or the answer)."""
    for i, step in enumerate(corrected):
        if i >= len(original):
            return list(corrected)
        if original[i].text.strip() != step.text.strip():
            fix = Step(step.strategy, f"{SELF_CORRECTION_MARK} {step.text.strip()}")
            return [*corrected[:i], original[i], fix, *corrected[i + 1 :]]
    return list(corrected)


# How a rendered self-correction begins; the parser's SELF_CORRECTION cue reads it.
SELF_CORRECTION_MARK = "Wait, that is wrong:"


def answer_sentence(answer: object) -> str:
    """``The answer is N.``, unless the answer already says so."""
    text = str(answer).strip()
    if text.lower().startswith("the answer is"):
        return text
    return f"The answer is {text.rstrip('.')}."


def reasoning_style(model_dir: Path | str) -> str:
    """How the model in ``model_dir`` writes its reasoning (see the module docstring)."""
    path = Path(model_dir) / STYLE_FILE
    if not path.is_file():
        return PARAGRAPHS
    style = json.loads(path.read_text()).get("reasoning_style", PARAGRAPHS)
    if style not in STYLES:
        raise ValueError(f"{path}: unknown reasoning_style {style!r}; one of {', '.join(STYLES)}")
    return str(style)
