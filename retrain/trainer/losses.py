"""The composite loss' terms. Each is a scalar to minimise.

L_ce   token cross-entropy of the corrected response (prompt and padding masked out):
       descending it raises the probability of the reviewer's corrected reasoning.
L_cons odds-ratio preference term on reflection pairs (ORPO's form):
       -log sigmoid(log odds(chosen) - log odds(rejected)), with odds(y) = p / (1 - p) and
       p the geometric mean token probability of y. Descending it lowers the original
       (rejected) reasoning relative to the corrected one, and only that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_token_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean log-probability of the labelled tokens (labels -100 are ignored)."""
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    logp = torch.log_softmax(shift_logits.float(), dim=-1)
    picked = logp.gather(-1, shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def odds_ratio_loss(chosen_logp: torch.Tensor, rejected_logp: torch.Tensor) -> torch.Tensor:
    def log_odds(lp):
        return lp - torch.log1p(-torch.exp(lp).clamp(max=1 - 1e-6))

    return -F.logsigmoid(log_odds(chosen_logp) - log_odds(rejected_logp)).mean()
