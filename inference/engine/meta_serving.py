"""Run the metacognition head over generated answers: per-step strategy, answer confidence.

The head reads the last layer's hidden states at each step's last token and at the answer's
last token. The steps are the parser's, so the head and the score talk about the same steps.

Serving takes those states from generation itself (`annotate_generations` with the
`TokenStates` of `generate_batch_with_states`): no second pass over the model. A row whose
text does not re-encode to the tokens generation fed (a tokenizer that does not round-trip
its own output), or that comes without states, gets one padded forward over prompt +
completion instead (`annotate_batch`, which reads any prompt + completion pair).

Answers made elsewhere (vLLM, another host) are read the same way with `read_answers`: one
padded prefill of prompt + answer for a request's answers, no generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .chat import prompt_text
from .generation import (
    Generation,
    GenerationParams,
    TokenStates,
    _decoder_of,
    generate_batch,
    generate_batch_with_states,
)
from .metahead import MetaHead, predict_batch, step_end_positions
from .parser import parse_output


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


@dataclass
class _Row:
    """One answer as the head sees it: prompt + completion, its tokens, and its steps' ends."""

    text: str
    ends: list[int]  # character index just past each step, in `text`
    input_ids: list[int]
    offsets: list[tuple[int, int]]


def _rows(tokenizer, prompts: list[str], completions: list[str]) -> list[_Row]:
    heads = [prompt_text(tokenizer, p) for p in prompts]
    texts = [h + c for h, c in zip(heads, completions)]
    if not texts:
        return []
    encoded = tokenizer(texts, return_offsets_mapping=True, add_special_tokens=False)
    rows = []
    for i, (head_text, completion) in enumerate(zip(heads, completions)):
        steps = parse_output(completion).steps
        ends = [len(head_text) + e for e in step_ends(completion, [s.text for s in steps])]
        rows.append(_Row(texts[i], ends, encoded["input_ids"][i], encoded["offset_mapping"][i]))
    return rows


def _read(head: MetaHead, rows: list[_Row], states: list[torch.Tensor]) -> list[dict]:
    """The head's reading of each row from its ``states [n_tokens(+padding), hidden]``."""
    if not rows:
        return []
    step_states, answer_states = [], []
    for row, row_states in zip(rows, states):
        positions = step_end_positions(row.offsets, row.text, row.ends) if row.ends else []
        step_states.append(row_states[positions] if positions else row_states[:0])
        answer_states.append(row_states[len(row.input_ids) - 1])
    out = predict_batch(head, step_states, torch.stack(answer_states))
    return [
        {"strategies": o["strategies"], "confidence": o["confidence"], "untrained": o["untrained"]}
        for o in out
    ]


@torch.inference_mode()
def annotate_batch(
    model, tokenizer, head: MetaHead, prompts: list[str], completions: list[str]
) -> list[dict]:
    """For each completion: {"strategies": [...per step], "confidence": float | None, "untrained": bool}.

    One right-padded forward for the whole batch: with a causal mask, a sequence's states at
    its own positions do not depend on the padding after it.
    """
    return _annotate_rows(model, tokenizer, head, _rows(tokenizer, prompts, completions))


def _annotate_rows(model, tokenizer, head: MetaHead, rows: list[_Row]) -> list[dict]:
    if not rows:
        return []
    width = max(len(r.input_ids) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, : len(r.input_ids)] = 1
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    decoder = _decoder_of(model)
    if decoder is not None:
        # The decoder's output is the last layer's normed states, the ones hidden_states[-1]
        # gives, without keeping every layer's states (at R1's 28 layers and a long answer,
        # gigabytes) and without the vocabulary projection.
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
    else:
        hidden = model(
            input_ids=ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1
        ).hidden_states[-1]
    return _read(head, rows, list(hidden))


@torch.inference_mode()
def read_answers(
    model,
    tokenizer,
    head: MetaHead,
    prompts: list[str],
    completions: list[str],
    *,
    max_tokens: int | None = None,
) -> list[dict | None]:
    """`annotate_batch` for answers the model did not generate: one padded prefill of prompt +
    answer for all of them, no generation. A row longer than ``max_tokens`` (the model's
    context) gets None: states past the positions the model was trained on mean nothing."""
    rows = _rows(tokenizer, prompts, completions)
    fit = [i for i, row in enumerate(rows) if max_tokens is None or len(row.input_ids) <= max_tokens]
    results: list[dict | None] = [None] * len(rows)
    for i, result in zip(fit, _annotate_rows(model, tokenizer, head, [rows[i] for i in fit])):
        results[i] = result
    return results


@torch.inference_mode()
def annotate_generations(
    model,
    tokenizer,
    head: MetaHead,
    prompts: list[str],
    completions: list[str],
    token_states: list[TokenStates | None],
) -> list[dict]:
    """`annotate_batch`'s result, read from the states generation already computed.

    Rows whose re-encoded text matches the fed tokens are read from their `TokenStates`; the
    rest share one padded forward.
    """
    rows = _rows(tokenizer, prompts, completions)
    fed = {
        i: states
        for i, (row, states) in enumerate(zip(rows, token_states))
        if states is not None and list(row.input_ids) == states.token_ids
    }
    fed_rows = list(fed)
    missing = sorted(set(range(len(rows))) - set(fed_rows))
    results: list[dict | None] = [None] * len(rows)
    for i, result in zip(
        fed_rows, _read(head, [rows[i] for i in fed_rows], [fed[i].states for i in fed_rows])
    ):
        results[i] = result
    for i, result in zip(missing, _annotate_rows(model, tokenizer, head, [rows[i] for i in missing])):
        results[i] = result
    return results  # type: ignore[return-value]


def generate_and_read(
    model,
    tokenizer,
    head: MetaHead | None,
    prompts: list[str],
    params: GenerationParams,
    *,
    budgets: list[int] | None = None,
    advisory: bool = False,
) -> tuple[list[Generation], list[dict | None]]:
    """Generate for ``prompts`` and, with a head, read every answer from generation's states.

    Returns the generations and one head reading per answer (None without a head). A failed
    generation raises. ``advisory``: a failure of the head's reading gives None for every
    answer instead of raising, so that serving never loses an answer to the head.
    """
    if head is None:
        return generate_batch(model, tokenizer, prompts, params, budgets=budgets), [None] * len(prompts)
    generations, fed = generate_batch_with_states(model, tokenizer, prompts, params, budgets=budgets)
    try:
        metas: list[dict | None] = list(
            annotate_generations(model, tokenizer, head, prompts, [g.text for g in generations], fed)
        )
    except Exception:
        if not advisory:
            raise
        metas = [None] * len(prompts)
    return generations, metas
