"""Training samples (plain dicts) -> token tensors.

A sample is ``{"prompt": str, "chosen": str, "rejected": str | None}``: ``chosen`` is the
response to learn (reasoning + ``</think>`` + answer), ``rejected`` the original response
it corrects (reflection samples only).
"""

from __future__ import annotations

import torch

from inference.engine.tiny import encode_pair


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, tokenizer, samples: list[dict], max_length: int):
        self.rows = []
        for s in samples:
            p, c = encode_pair(tokenizer, s["prompt"], s["chosen"])
            row = {"prompt": p[-max_length // 2 :], "chosen": c[: max_length // 2]}
            if s.get("rejected"):
                _, r = encode_pair(tokenizer, s["prompt"], s["rejected"])
                row["rejected"] = r[: max_length // 2]
            self.rows.append(row)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _pad(seqs, pad_id, prompt_lens=None):
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


class PairCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows):
        plens = [len(r["prompt"]) for r in rows]
        ids, mask, labels = _pad([r["prompt"] + r["chosen"] for r in rows], self.pad_id, plens)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        paired = [i for i, r in enumerate(rows) if "rejected" in r]
        if paired:
            c_ids, c_mask, c_labels = _pad([rows[i]["prompt"] + rows[i]["chosen"] for i in paired], self.pad_id,
                                           [plens[i] for i in paired])
            r_ids, r_mask, r_labels = _pad([rows[i]["prompt"] + rows[i]["rejected"] for i in paired], self.pad_id,
                                           [plens[i] for i in paired])
            batch.update(
                pair_chosen_input_ids=c_ids, pair_chosen_attention_mask=c_mask, pair_chosen_labels=c_labels,
                pair_rejected_input_ids=r_ids, pair_rejected_attention_mask=r_mask, pair_rejected_labels=r_labels,
            )
        return batch
