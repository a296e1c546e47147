"""Training samples (plain dicts) -> token tensors.

A sample is ``{"prompt": str, "chosen": str, "rejected": str | None, "confidence": float | None,
"rejected_confidence": float | None}``: ``chosen`` is the response to learn (reasoning +
``</think>`` + answer), ``rejected`` the original response it corrects (reflection samples
only). ``confidence`` is the target for the metacognition head's answer confidence on
``chosen`` (the middle of the reviewer's interval), ``rejected_confidence`` the one on the
original (0 when the reviewer found an error); None leaves the confidence term out.

For the head (L_meta) each row also carries ``meta``: the token positions where the chosen
response's steps end, their strategy labels (indices into STRATEGIES) and the answer's last
token, found with the same functions the serving path uses (meta_serving).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from inference.engine.chat import encode_pair, prompt_text
from inference.engine.meta_serving import step_ends
from inference.engine.metahead import IGNORE_STRATEGY, step_end_positions
from inference.engine.parser import STRATEGIES, parse_output


def meta_targets(
    tokenizer: Any, prompt: str, response: str, prompt_len: int, limit: int
) -> dict[str, Any] | None:
    """Step-end token positions (in prompt + response ids), strategy indices and the answer position.

    None when the response's tokens cannot be placed (offsets disagree with the ids the
    model trains on, or a step falls outside the ``limit`` tokens kept).
    """
    head_text = prompt_text(tokenizer, prompt)
    full = head_text + response
    enc = tokenizer(full, return_offsets_mapping=True, add_special_tokens=False)
    steps = parse_output(response).steps
    ends = [len(head_text) + e for e in step_ends(response, [s.text for s in steps])]
    if not ends or len(ends) != len(steps):
        return None
    positions = step_end_positions(enc["offset_mapping"], full, ends)
    if any(p < prompt_len or p >= limit for p in positions):
        return None
    strategies = [
        STRATEGIES.index(s.strategy) if s.strategy in STRATEGIES else IGNORE_STRATEGY for s in steps
    ]
    return {"positions": positions, "strategies": strategies, "answer": min(len(enc["input_ids"]), limit) - 1}


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, tokenizer: Any, samples: list[dict[str, Any]], max_length: int):
        self.rows: list[dict[str, Any]] = []
        half = max_length // 2
        for s in samples:
            p, c = encode_pair(tokenizer, s["prompt"], s["chosen"])
            row: dict[str, Any] = {
                "prompt": p[-half:],
                "chosen": c[:half],
                "kind": "reflection" if s.get("rejected") else "replay",
            }
            if len(p) <= half:  # positions are only meaningful when the prompt was not cut
                row["meta"] = meta_targets(
                    tokenizer, s["prompt"], s["chosen"], len(p), len(p) + min(len(c), half)
                )
                if row["meta"] is not None:
                    row["meta"]["confidence"] = s.get("confidence")
            if s.get("rejected"):
                _, r = encode_pair(tokenizer, s["prompt"], s["rejected"])
                row["rejected"] = r[:half]
                if len(p) <= half and s.get("rejected_confidence") is not None:
                    row["rejected_meta"] = meta_targets(
                        tokenizer, s["prompt"], s["rejected"], len(p), len(p) + min(len(r), half)
                    )
                    if row["rejected_meta"] is not None:
                        row["rejected_meta"]["confidence"] = s["rejected_confidence"]
            self.rows.append(row)

    @property
    def meta_rows(self) -> int:
        return sum(r.get("meta") is not None for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _pad(
    seqs: list[list[int]], pad_id: int, prompt_lens: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        start = prompt_lens[i] if prompt_lens else 0
        labels[i, start : len(s)] = torch.tensor(s[start:])
    return ids, mask, labels


class CurriculumSampler(torch.utils.data.Sampler[int]):
    """Epochs of constant length whose share of reflection rows rises from ``start`` to ``end``.

    Early epochs lean on replay rows (answers the model already gets right), later ones on
    the corrections: the seed's "gradually increase the share of reflection samples". Rows
    of each kind are drawn in a fresh seeded order per epoch, cycling when a kind has fewer
    rows than its slots. Without one of the kinds it is a plain seeded shuffle.
    """

    def __init__(self, kinds: list[str], *, start: float, end: float, epochs: int, seed: int):
        self.reflection = [i for i, k in enumerate(kinds) if k == "reflection"]
        self.replay = [i for i, k in enumerate(kinds) if k != "reflection"]
        self.start, self.end, self.epochs, self.seed = start, end, max(1, epochs), seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def share(self, epoch: int) -> float:
        if not self.reflection or not self.replay:
            return 1.0 if self.reflection else 0.0
        t = min(1.0, epoch / max(1, self.epochs - 1))
        return self.start + (self.end - self.start) * t

    def __len__(self) -> int:
        return len(self.reflection) + len(self.replay)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        n = len(self)
        k = round(self.share(self.epoch) * n)

        def draw(pool: list[int], count: int) -> list[int]:
            if not pool or count <= 0:
                return []
            out: list[int] = []
            while len(out) < count:
                out += [pool[i] for i in torch.randperm(len(pool), generator=g).tolist()]
            return out[:count]

        picked = draw(self.reflection, k) + draw(self.replay, n - k)
        return iter([picked[i] for i in torch.randperm(len(picked), generator=g).tolist()])


class PairCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        plens = [len(r["prompt"]) for r in rows]
        ids, mask, labels = _pad([r["prompt"] + r["chosen"] for r in rows], self.pad_id, plens)
        batch = {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "meta": [r.get("meta") for r in rows],
        }
        paired = [i for i, r in enumerate(rows) if "rejected" in r]
        if paired:
            # The chosen side of each pair is its row of the main batch (right padding leaves
            # its logits unchanged), so only the rejected responses need a forward of their own.
            r_ids, r_mask, r_labels = _pad(
                [rows[i]["prompt"] + rows[i]["rejected"] for i in paired],
                self.pad_id,
                [plens[i] for i in paired],
            )
            batch.update(
                pair_index=torch.tensor(paired, dtype=torch.long),
                pair_rejected_meta=[rows[i].get("rejected_meta") for i in paired],
                pair_rejected_input_ids=r_ids,
                pair_rejected_attention_mask=r_mask,
                pair_rejected_labels=r_labels,
            )
        return batch
