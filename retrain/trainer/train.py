"""The fine-tune itself: a ``transformers.Trainer`` whose ``compute_loss`` is the composite loss."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from inference.engine import loading

from .config import ALL_LINEAR, TrainConfig
from .data import PairCollator, PairDataset
from .losses import mean_token_logprob, odds_ratio_loss

log = logging.getLogger("cogloop.trainer")


class CompositeLossTrainer(Trainer):
    """L = alpha * L_ce + beta * L_meta + gamma * L_cons (see losses.py)."""

    def __init__(self, *args, train_config: TrainConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_config = train_config
        self.last_terms: dict[str, float] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        c = self.train_config
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"])
        loss = c.alpha * out.loss
        terms = {"ce": out.loss.item()}
        if c.gamma > 0 and "pair_chosen_input_ids" in inputs:
            chosen = model(input_ids=inputs["pair_chosen_input_ids"], attention_mask=inputs["pair_chosen_attention_mask"])
            rejected = model(
                input_ids=inputs["pair_rejected_input_ids"], attention_mask=inputs["pair_rejected_attention_mask"]
            )
            cons = odds_ratio_loss(
                mean_token_logprob(chosen.logits, inputs["pair_chosen_labels"]),
                mean_token_logprob(rejected.logits, inputs["pair_rejected_labels"]),
            )
            loss = loss + c.gamma * cons
            terms["cons"] = cons.item()
        self.last_terms = terms
        return (loss, out) if return_outputs else loss


class ProgressCallback(TrainerCallback):
    def __init__(self, on_progress):
        self.on_progress = on_progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.on_progress and logs and "loss" in logs:
            self.on_progress(
                {"step": state.global_step, "max_steps": state.max_steps, "loss": round(float(logs["loss"]), 5)}
            )


def apply_recipe(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    if config.recipe == "full":
        for p in model.parameters():
            p.requires_grad = True
        return model
    if config.recipe == "lora-all":
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=ALL_LINEAR, task_type="CAUSAL_LM")
    else:  # layered: the seed's recipe
        n = min(config.layered_layers, model.config.num_hidden_layers)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=["q_proj", "k_proj"], layers_to_transform=list(range(n)),
                          modules_to_save=["lm_head"], task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def finetune(
    *,
    base_dir: Path,
    samples: list[dict],
    out_dir: Path,
    work_dir: Path,
    config: TrainConfig,
    on_progress=None,
) -> dict:
    """Fine-tune the model in ``base_dir`` on ``samples``; write merged safetensors to ``out_dir``."""
    config.validate()
    torch.manual_seed(config.seed)
    model, tokenizer = loading.load_model(base_dir)
    model = apply_recipe(model, config)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    dataset = PairDataset(tokenizer, samples, config.max_length)
    args = TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = CompositeLossTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=PairCollator(tokenizer.pad_token_id),
        train_config=config,
        callbacks=[ProgressCallback(on_progress)],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to on_progress (the run row) instead
    started = time.monotonic()
    result = trainer.train()
    seconds = time.monotonic() - started
    history = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    summary = {
        "config": config.to_dict(),
        "samples": len(dataset),
        "trainable_parameters": trainable,
        "train_loss": round(float(result.training_loss), 5),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "loss_history": history,
        "warnings": config.warnings(),
        "meta_loss": "absent: no metacognition head in this run",
    }
    (out_dir / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
