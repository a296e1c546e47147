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
    """For each completion: {"strategies": [...per step], "confidence": float | None, "untrained": bool}.

    One right-padded forward for the whole batch: with a causal mask, a sequence's states at
    its own positions do not depend on the padding after it.
    """
    if not prompts:
        return []
    texts, places = [], []
    for prompt, completion in zip(prompts, completions):
        head_text = prompt_text(tokenizer, prompt)
        texts.append(head_text + completion)
        steps = parse_output(completion).steps
        places.append([len(head_text) + e for e in step_ends(completion, [s.text for s in steps])])
    encodings = [tokenizer(t, return_offsets_mapping=True, add_special_tokens=False) for t in texts]
    width = max(len(e["input_ids"]) for e in encodings)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(texts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for i, e in enumerate(encodings):
        ids[i, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        mask[i, : len(e["input_ids"])] = 1
    device = next(model.parameters()).device
    # logits for the last position only: the head reads hidden states, not the vocabulary
    hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True,
                   logits_to_keep=1).hidden_states[-1]
    results = []
    for i, (e, text, ends) in enumerate(zip(encodings, texts, places)):
        positions = step_end_positions(e["offset_mapping"], text, ends) if ends else []
        step_states = hidden[i, positions] if positions else hidden[i, :0]
        out = predict(head, step_states.float(), hidden[i, len(e["input_ids"]) - 1].float())
        results.append({"strategies": out["strategies"], "confidence": out["confidence"], "untrained": out["untrained"]})
    return results
