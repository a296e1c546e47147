"""Build and pretrain `cogloop-tiny`: the shipped default model.

A ``Qwen2ForCausalLM`` (the production architecture) at tiny size, with its own byte-level
BPE tokenizer trained on the workload and DeepSeek-R1's chat template, so that every code
path that serves or trains DeepSeek-R1-Distill-Qwen-1.5B runs unchanged on it.

Pretraining is plain next-token cross-entropy on the response (the prompt is not a
target), over problems drawn from ``workload`` with the planted blind spot. Everything is
seeded: the same config gives the same weights on the same torch build.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import workload
from .chat import encode_pair

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
PAD = "<｜▁pad▁｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SPECIAL_TOKENS = [BOS, EOS, USER, ASSISTANT, PAD, THINK_OPEN, THINK_CLOSE]

# DeepSeek-R1's template, reduced to what a single-turn product call needs: no system
# prompt (R1's recommendation), and the generation prompt opens the think block.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS + ""
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + THINK_OPEN + "\n{% endif %}"
)


@dataclass
class TinyPretrainConfig:
    """Everything that decides the shipped weights. Saved beside them as pretrain.json."""

    seed: int = 1234
    corpus_size: int = 40000
    vocab_size: int = 640
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    blind_spot_share: float = 0.3


def build_tokenizer(texts, *, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[USER, ASSISTANT, THINK_OPEN, THINK_CLOSE],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _batches(examples, batch_size, rng, pad_id):
    import torch

    while True:
        idx = list(range(len(examples)))
        rng.shuffle(idx)
        for i in range(0, len(idx) - batch_size + 1, batch_size):
            chunk = [examples[j] for j in idx[i : i + batch_size]]
            width = max(len(p) + len(r) for p, r in chunk)
            ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
            labels = torch.full((batch_size, width), -100, dtype=torch.long)
            mask = torch.zeros((batch_size, width), dtype=torch.long)
            for row, (p, r) in enumerate(chunk):
                seq = p + r
                ids[row, : len(seq)] = torch.tensor(seq)
                labels[row, len(p) : len(seq)] = torch.tensor(r)
                mask[row, : len(seq)] = 1
            yield ids, labels, mask


def pretrain(out_dir: Path, config: TinyPretrainConfig, *, log=print) -> dict:
    """Train cogloop-tiny from scratch and save it (safetensors) into ``out_dir``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(config.seed)
    corpus = workload.problems(
        config.corpus_size,
        seed=config.seed,
        split="train",
        planted=True,
        blind_spot_share=config.blind_spot_share,
    )
    texts = [p.prompt for p in corpus] + [p.response_text() for p in corpus]
    tokenizer = build_tokenizer(texts, vocab_size=config.vocab_size)
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(model_config)
    examples = [encode_pair(tokenizer, p.prompt, p.response_text()) for p in corpus]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(0.9, 0.98),
    )

    def lr_at(step):
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    batches = _batches(examples, config.batch_size, random.Random(config.seed), tokenizer.pad_token_id)
    model.train()
    started = time.monotonic()
    history = []
    for step in range(config.steps):
        ids, labels, mask = next(batches)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4)})
            log(f"step {step:5d}  loss {loss.item():.4f}  {time.monotonic() - started:.0f}s")
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    summary = {
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.monotonic() - started, 1),
        "loss_history": history,
    }
    (out_dir / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
