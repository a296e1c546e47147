"""Run the metacognition head over generated answers: per-step strategy, answer confidence.

One extra forward pass per batch over prompt + completion (hidden states of the last layer);
the head reads the states at each step's last token and at the answer's last token. The
steps are the parser's, so the head and the score talk about the same steps.
"""

from __future__ import annotations

import torch

from .metahead import MetaHead, predict, step_end_positions
from .parser import parse_output
from .tiny import prompt_text


def step_ends(completion: str, step_texts: list[str]) -> list[int]:
    """Character index just past each step's text in the completion (searched in order)."""
    ends, cursor = [], 0
    for text in step_texts:
        first_line = text.split("\n")[-1]
        at = completion.find(first_line, cursor)
        if at < 0:
            break
        cursor = at + len(first_line)
        ends.append(cursor)
    return ends


@torch.inference_mode()
def annotate_batch(model, tokenizer, head: MetaHead, prompts: list[str], completions: list[str]) -> list[dict]:
    """For each completion: {"strategies": [...per step], "confidence": float | None, "untrained": bool}."""
    results = []
    for prompt, completion in zip(prompts, completions):
        head_text = prompt_text(tokenizer, prompt)
        full = head_text + completion
        enc = tokenizer(full, return_offsets_mapping=True, add_special_tokens=False, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        steps = parse_output(completion).steps
        ends = [len(head_text) + e for e in step_ends(completion, [s.text for s in steps])]
        device = next(model.parameters()).device
        hidden = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True).hidden_states[-1][0]
        positions = step_end_positions(offsets, full, ends) if ends else []
        step_states = hidden[positions] if positions else hidden[:0]
        out = predict(head, step_states.float(), hidden[-1].float())
        results.append({"strategies": out["strategies"], "confidence": out["confidence"], "untrained": out["untrained"]})
    return results
