"""Model directories in the production model's shape, with random weights, for benchmarks.

Weights cannot be downloaded here, and speed does not depend on their values: these
directories have DeepSeek-R1-Distill-Qwen-1.5B's architecture (its config.json) and random
weights, with cogloop-tiny's tokenizer beside them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "inference" / "engine" / "cogloop_tiny"

# DeepSeek-R1-Distill-Qwen-1.5B's config.json (architecture only; weights are random here).
R1_DISTILL_1_5B = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=131072,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    vocab_size=151936,
    tie_word_embeddings=False,
)
# The same vocabulary and head layout, 2 narrow layers: checks a script end to end on a CPU.
R1_DISTILL_SMALL = {
    **R1_DISTILL_1_5B,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
SHAPES = {"r1-distill-1.5b": R1_DISTILL_1_5B, "r1-distill-small": R1_DISTILL_SMALL}


def shaped_model_dir(
    out: Path, shape: dict, *, device: str = "cpu", dtype=None, decodable: bool = False
) -> Path:
    """Save a random-weights model of ``shape`` (with the tiny tokenizer) into ``out``, once.

    ``decodable``: zero every output row but those of `round_trip_ids`, so that greedy
    decoding writes text that re-encodes to the tokens it generated, as a trained model's
    text does (the head then reads generation's states, as in serving). The matrix keeps its
    full size, so the work per token is the real model's. Without it, most generated ids
    decode to nothing.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    if (out / "config.json").exists():
        return out
    with torch.device(device):
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    if dtype is not None:
        model = model.to(dtype)
    if decodable:
        keep = torch.zeros(
            model.lm_head.weight.shape[0], dtype=torch.bool, device=model.lm_head.weight.device
        )
        keep[round_trip_ids()] = True
        with torch.no_grad():
            model.lm_head.weight[~keep] = 0
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(TINY / name, out / name)
    return out


def round_trip_ids() -> list[int]:
    """The tiny tokenizer's ids for single printable ASCII characters that no BPE merge uses:
    any sequence of them decodes to text that encodes back to the same ids."""
    spec = json.loads((TINY / "tokenizer.json").read_text())
    merged = {
        part
        for merge in spec["model"]["merges"]
        for part in (merge.split(" ") if isinstance(merge, str) else merge)
    }
    special = {t["content"] for t in spec.get("added_tokens", [])}
    return sorted(
        i
        for token, i in spec["model"]["vocab"].items()
        if len(token) == 1 and "!" <= token <= "~" and token not in merged and token not in special
    )
