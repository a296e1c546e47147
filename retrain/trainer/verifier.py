"""The head's confidence as a verifier: trained on whether the model's own answers were right.

The metacognition head reads the model's hidden states at step ends and at the answer. Its
confidence means "this answer is right" only if it is trained on that verdict, on answers this
model writes. ``fit_verifier``:

1. samples ``samples`` answers per prompt from the model (temperature ``temperature``) plus the
   greedy one, so the set holds right and wrong answers of the kind the model makes;
2. labels each right when its final answer's value equals the prompt's reference
   (``inference.engine.agreement.normalise_answer``: ``18``, ``$18.00`` and ``18 dollars`` agree);
   the reference is a reviewer-verified corrected answer or, on the embedded workload, the
   checker-verified solution;
3. reads the states the head reads in serving (one padded forward per batch,
   ``meta_serving``), and
4. fits the head: binary cross-entropy of the confidence against the verdicts (each class
   weighted to half the loss, so a model that is mostly wrong does not learn "always wrong"),
   plus a distillation term that keeps the strategy predictions where they were (the trunk is
   shared). Full batch, Adam, ``steps`` steps; a seeded held-back share of the prompts measures
   AUROC and ECE so the caller can see whether it learned anything.

Returns the measured numbers; the head is marked trained in place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inference.engine.agreement import final_number, normalise_answer
from inference.engine.generation import GenerationParams, generate_batch
from inference.engine.meta_serving import _rows
from inference.engine.metahead import MetaHead, step_end_positions
from inference.engine.parser import parse_output
from retrain.trainer.evaluate import answers_match, expected_calibration_error


@dataclass
class VerifierConfig:
    samples: int = 4
    temperature: float = 0.8
    max_new_tokens: int = 96
    steps: int = 400
    lr: float = 3e-3
    distill: float = 1.0
    holdout_share: float = 0.2
    batch_size: int = 64
    seed: int = 0


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random right answer scores above a random wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    ranked = sorted((s, y) for s, y in zip(scores, labels))
    # rank-sum with average ranks for ties
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average = (i + 1 + j) / 2
        rank_sum += average * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def ece(scores: list[float], labels: list[bool]) -> float | None:
    """The evaluator's expected calibration error over (score, right) pairs."""
    return expected_calibration_error(list(zip(scores, labels)))


def is_right(completion: str, reference: object) -> bool:
    return answers_match(parse_output(completion).answer, reference)


@torch.inference_mode()
def _answers(model, tokenizer, items: list[dict], config: VerifierConfig) -> list[tuple[str, str, bool]]:
    """(prompt, completion, right) for the greedy answer and ``samples`` sampled ones per item."""
    out = []
    greedy = GenerationParams(max_new_tokens=config.max_new_tokens)
    sampled = GenerationParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    for start in range(0, len(items), config.batch_size):
        chunk = items[start : start + config.batch_size]
        prompts = [c["prompt"] for c in chunk]
        for params, repeats in ((greedy, 1), (sampled, config.samples)):
            for _ in range(repeats):
                for item, gen in zip(chunk, generate_batch(model, tokenizer, prompts, params)):
                    out.append((item["prompt"], gen.text, is_right(gen.text, item["answer"])))
    return out


@torch.no_grad()  # not inference_mode: the head trains on these states afterwards
def _states(model, tokenizer, answers: list[tuple[str, str, bool]], batch_size: int):
    """Per answer: (step states [n_steps, hidden], answer state [hidden]) as serving reads them."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(answers), batch_size):
        chunk = answers[start : start + batch_size]
        rows = _rows(tokenizer, [a[0] for a in chunk], [a[1] for a in chunk])
        width = max(len(r.input_ids) for r in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
            mask[i, : len(r.input_ids)] = 1
        hidden = (
            model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                output_hidden_states=True,
                logits_to_keep=1,
            )
            .hidden_states[-1]
            .float()
        )
        for row, states in zip(rows, hidden):
            positions = step_end_positions(row.offsets, row.text, row.ends) if row.ends else []
            steps = states[positions] if positions else states[:0]
            out.append((steps.cpu(), states[len(row.input_ids) - 1].cpu()))
    return out


def _batched(states) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(answer states [n, hidden], step states padded [n, max_steps, hidden], mask [n, max_steps])."""
    answers = torch.stack([a for _, a in states])
    width = max(1, max(len(s) for s, _ in states))
    steps = torch.zeros(len(states), width, answers.shape[-1])
    mask = torch.zeros(len(states), width, dtype=torch.bool)
    for i, (s, _) in enumerate(states):
        steps[i, : len(s)] = s
        mask[i, : len(s)] = True
    return answers, steps, mask


def _confidence_logits(head: MetaHead, batched) -> torch.Tensor:
    """``MetaHead.confidence_logit`` for every answer at once: the answer's trunk features,
    max-pooled with its steps' (padding excluded)."""
    answers, steps, mask = batched
    features = head.features(answers)
    step_features = head.features(steps).masked_fill(~mask.unsqueeze(-1), float("-inf"))
    features = torch.maximum(features, step_features.amax(dim=1))
    return head.confidence(features).squeeze(-1)


def fit_verifier(
    model, tokenizer, head: MetaHead, items: list[dict], config: VerifierConfig | None = None
) -> dict:
    """Fit ``head``'s confidence on verdicts of the model's own answers to ``items``
    (``[{"prompt", "answer"}]``; see the module docstring). Returns what it measured."""
    config = config or VerifierConfig()
    rng = random.Random(config.seed)
    prompts = sorted({i["prompt"] for i in items})
    rng.shuffle(prompts)
    held = set(prompts[: int(len(prompts) * config.holdout_share)])
    model.eval()
    answers = _answers(model, tokenizer, items, config)
    states = _states(model, tokenizer, answers, config.batch_size)
    labels = torch.tensor([float(a[2]) for a in answers])
    fit = [i for i, a in enumerate(answers) if a[0] not in held]
    check = [i for i, a in enumerate(answers) if a[0] in held]
    fit_states, fit_labels = [states[i] for i in fit], labels[fit]
    fit_batch = _batched(fit_states)
    positives = float(fit_labels.sum())
    negatives = len(fit) - positives
    if positives == 0 or negatives == 0:
        return {
            "answers": len(answers),
            "right": int(labels.sum()),
            "trained": False,
            "reason": "every answer was right or every answer was wrong: nothing to tell apart",
        }
    weights = torch.where(fit_labels > 0, 0.5 / positives, 0.5 / negatives) * len(fit)
    step_bank = (
        torch.cat([s for s, _ in fit_states if len(s)]) if any(len(s) for s, _ in fit_states) else None
    )
    with torch.no_grad():
        strategy_before = head.strategy_logits(step_bank).softmax(-1) if step_bank is not None else None
    head.train()
    head.requires_grad_(True)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    torch.manual_seed(config.seed)
    for _ in range(config.steps):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(
            _confidence_logits(head, fit_batch), fit_labels, weight=weights
        )
        if step_bank is not None and strategy_before is not None and config.distill > 0:
            now = head.strategy_logits(step_bank).log_softmax(-1)
            loss = loss + config.distill * F.kl_div(now, strategy_before, reduction="batchmean")
        loss.backward()
        optimizer.step()
    head.eval()
    head.config.trained = True
    with torch.no_grad():
        scores = torch.sigmoid(_confidence_logits(head, _batched(states))).tolist()
    held_scores = [scores[i] for i in check]
    held_labels = [bool(labels[i]) for i in check]
    return {
        "trained": True,
        "answers": len(answers),
        "right": int(labels.sum()),
        "fit_answers": len(fit),
        "held_answers": len(check),
        "held_auroc": auroc(held_scores, held_labels),
        "held_ece": ece(held_scores, held_labels),
        "final_loss": round(float(loss.detach()), 4),
    }


def verdict_items(rows: list[dict], *, limit: int, seed: int) -> list[dict]:
    """Prompts with a verified reference answer from trainer rows: a reflection row's corrected
    response (reviewer-verified) and a replay row's served answer (checked consistent). At most
    ``limit``, a seeded draw; rows whose response states no final answer are left out."""
    items = []
    for row in rows:
        answer = parse_output(row["chosen"]).answer
        if answer and final_number(answer) is not None:  # a reference is a number
            items.append({"prompt": row["prompt"], "answer": normalise_answer(answer)})
    unique = list({item["prompt"]: item for item in items}.values())
    random.Random(seed).shuffle(unique)
    return unique[:limit]


def fit_verifier_dir(model_dir, items: list[dict], config: VerifierConfig | None = None) -> dict:
    """`fit_verifier` on the model saved in ``model_dir`` and its head (a fresh one when it has
    none), then save the head back beside it. Returns what was measured."""
    from inference.engine import loading
    from inference.engine.metahead import MetaHeadConfig, load_head, save_head

    model, tokenizer = loading.load_model(model_dir)
    head = load_head(model_dir) or MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size))
    summary = fit_verifier(model, tokenizer, head, items, config)
    if summary.get("trained"):
        save_head(head, model_dir)
    return summary
