"""Chat template and prompt rendering: the one place that turns a prompt and a reasoning into text.

Every caller (generation, the head's reading, training data, the demo's workload) renders
through here, so the text a model is trained on is the text it is served with.

- ``prompt_text``: the model's own chat template (R1's ends with ``<think>\\n``).
- ``render_steps`` / ``render_response``: reasoning steps in cogloop-tiny's
  ``Step k [strategy]: text`` lines, then ``</think>`` and the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


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


def render_response(steps: Iterable[Step], answer: object) -> str:
    """The text a model generates after the chat template's ``<think>\\n``."""
    return f"{render_steps(steps)}\n</think>\n\nThe answer is {answer}."
