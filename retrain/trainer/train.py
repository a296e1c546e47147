"""The fine-tune itself: a ``transformers.Trainer`` whose ``compute_loss`` is the composite loss."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from inference.engine import loading
from inference.engine.metahead import (
    IGNORE_STRATEGY,
    MetaHead,
    MetaHeadConfig,
    load_head,
    meta_loss,
    save_head,
)

from .config import ALL_LINEAR, TrainConfig
from .data import CurriculumSampler, PairCollator, PairDataset
from .losses import mean_token_logprob, odds_ratio_loss

log = logging.getLogger("cogloop.trainer")
CHECKPOINT_WEIGHTS = "model.safetensors"


class MetaModel(nn.Module):
    """The causal LM (a peft model or the plain one) and the metacognition head, trained together.

    ``forward`` is the LM's; the head reads the LM's last hidden states in the loss. Gradients
    of L_meta reach both the head and the LM's trainable weights.
    """

    def __init__(self, lm: nn.Module, head: MetaHead):
        super().__init__()
        self.lm = lm
        self.head = head
        self.config = lm.config

    def forward(self, **kwargs):
        return self.lm(**kwargs)


def meta_rows_loss(head: MetaHead, hidden: torch.Tensor, metas: list[dict | None]) -> list[torch.Tensor]:
    """One L_meta per row that has targets: strategies at its step ends, confidence at its answer."""
    losses = []
    for b, m in enumerate(metas):
        if not m:
            continue
        out = {
            "strategy_logits": head.strategy_logits(hidden[b, m["positions"]]),
            "confidence_logit": head.confidence_logit(hidden[b, m["answer"]], hidden[b, m["positions"]]),
        }
        losses.append(meta_loss(out, torch.tensor(m["strategies"]), m.get("confidence")))
    return losses


class CompositeLossTrainer(Trainer):
    """L = alpha * L_ce + beta * L_meta + gamma * L_cons (see losses.py and metahead.meta_loss).

    Checkpoints hold only the trainable weights (LoRA, lm_head in the layered recipe, the
    head), with the optimizer and scheduler state: a resumed run continues where it stopped.
    """

    def __init__(
        self, *args, train_config: TrainConfig, curriculum: CurriculumSampler | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.train_config = train_config
        self.curriculum = curriculum
        self.last_terms: dict[str, float] = {}
        self.tokens_seen = 0  # every token forwarded (training sequences and rejected responses)
        self.main_tokens = 0  # the training sequences' tokens

    def create_optimizer(self, model=None):
        """AdamW with two groups: the model's trainable weights at ``learning_rate``, the head at
        ``head_learning_rate`` (the scheduler scales both)."""
        if self.optimizer is None:
            wrapper = self.accelerator.unwrap_model(self.model)
            head_ids = {id(p) for p in wrapper.head.parameters()}
            params = [p for p in wrapper.parameters() if p.requires_grad]
            groups = [
                {"params": [p for p in params if id(p) not in head_ids], "lr": self.args.learning_rate},
                {
                    "params": [p for p in params if id(p) in head_ids],
                    "lr": self.train_config.head_learning_rate,
                },
            ]
            self.optimizer = torch.optim.AdamW(
                [g for g in groups if g["params"]], weight_decay=self.args.weight_decay
            )
        return self.optimizer

    def _get_train_sampler(self, train_dataset=None):
        return self.curriculum or super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        c = self.train_config
        head = self.accelerator.unwrap_model(model).head
        metas = inputs.get("meta") or []
        want_meta = c.beta > 0 and any(metas)
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=inputs["labels"],
            output_hidden_states=want_meta,
        )
        self.main_tokens += int(inputs["attention_mask"].sum())
        self.tokens_seen += int(inputs["attention_mask"].sum())
        loss = c.alpha * out.loss
        terms = {"ce": out.loss.item()}
        meta_losses = meta_rows_loss(head, self._head_view(out.hidden_states[-1]), metas) if want_meta else []
        if c.gamma > 0 and "pair_index" in inputs:
            rejected_metas = inputs.get("pair_rejected_meta") or []
            rejected = model(
                input_ids=inputs["pair_rejected_input_ids"],
                attention_mask=inputs["pair_rejected_attention_mask"],
                output_hidden_states=c.beta > 0 and any(rejected_metas),
            )
            self.tokens_seen += int(inputs["pair_rejected_attention_mask"].sum())
            if rejected.hidden_states is not None:
                meta_losses += meta_rows_loss(
                    head, self._head_view(rejected.hidden_states[-1]), rejected_metas
                )
            index = inputs["pair_index"]
            cons = odds_ratio_loss(
                mean_token_logprob(out.logits[index], inputs["labels"][index]),
                mean_token_logprob(rejected.logits, inputs["pair_rejected_labels"]),
            )
            loss = loss + c.gamma * cons
            terms["cons"] = cons.item()
        if meta_losses:
            meta = torch.stack(meta_losses).mean()
            loss = loss + c.beta * meta
            terms["meta"] = meta.item()
        self.last_terms = terms
        return (loss, out) if return_outputs else loss

    def _clip_grad_norm(self, model):
        """Clip the model's and the head's gradients each to ``max_grad_norm`` on its own.

        One global norm let the fresh head's large early gradients scale the model's down:
        measured on the demo's workload, the blind spot fixed in 52 % of held-out problems
        instead of 98 %, and the gate rejected the candidate.
        """
        wrapper = self.accelerator.unwrap_model(model)
        head_ids = {id(p) for p in wrapper.head.parameters()}
        lm = [p for p in wrapper.parameters() if p.grad is not None and id(p) not in head_ids]
        head = [p for p in wrapper.head.parameters() if p.grad is not None]
        if head:
            torch.nn.utils.clip_grad_norm_(head, self.args.max_grad_norm)
        return torch.nn.utils.clip_grad_norm_(lm, self.args.max_grad_norm)

    def _head_view(self, hidden: torch.Tensor) -> torch.Tensor:
        """The states L_meta reads: cut from the model's graph unless ``meta_into_model``."""
        return hidden if self.train_config.meta_into_model else hidden.detach()

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        trainable = {k: p.detach().cpu().contiguous() for k, p in model.named_parameters() if p.requires_grad}
        safetensors.torch.save_file(
            trainable, os.path.join(output_dir, CHECKPOINT_WEIGHTS), metadata={"format": "pt"}
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = model or self.model
        state = safetensors.torch.load_file(os.path.join(resume_from_checkpoint, CHECKPOINT_WEIGHTS))
        wanted = {k for k, p in model.named_parameters() if p.requires_grad}
        if wanted - set(state) or set(state) - wanted:
            raise ValueError(
                f"checkpoint {resume_from_checkpoint} does not match this run's trainable weights"
            )
        model.load_state_dict(state, strict=False)


@torch.no_grad()
def _head_inputs(lm, dataset: PairDataset, collator: PairCollator, batch_size: int) -> dict | None:
    """The final model's hidden states at every labelled row's step ends and answer, flat."""
    answers, steps, owner, strategies, targets = [], [], [], [], []
    rows = [(r, "meta", "chosen") for r in dataset.rows] + [
        (r, "rejected_meta", "rejected") for r in dataset.rows
    ]
    rows = [(r, key, side) for r, key, side in rows if r.get(key)]
    device = next(lm.parameters()).device
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        batch = collator([{"prompt": r["prompt"], "chosen": r[side]} for r, _, side in chunk])
        hidden = (
            lm(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                output_hidden_states=True,
            )
            .hidden_states[-1]
            .float()
        )
        for b, (r, key, _) in enumerate(chunk):
            m = r[key]
            answers.append(hidden[b, m["answer"]])
            steps.append(hidden[b, m["positions"]])
            owner += [len(answers) - 1] * len(m["positions"])
            strategies += m["strategies"]
            targets.append(m.get("confidence"))
    if not answers:
        return None
    return {
        "answers": torch.stack(answers),
        "steps": torch.cat(steps),
        "owner": torch.tensor(owner, device=device),
        "strategies": torch.tensor(strategies, device=device),
        "targets": targets,
    }


def fit_head(head: MetaHead, inputs: dict, *, steps: int, lr: float) -> dict:
    """Fit the head to the final (merged) model's states: full-batch AdamW on the same L_meta.

    Joint training moves the model under the head; a few hundred cheap steps on cached states
    afterwards let the head match the weights it will be served with. Measured on the demo's
    corrections: joint training alone left confidence at 0.49 for corrected and 0.47 for
    original answers, indistinguishable.
    """
    import torch.nn.functional as F

    labelled = torch.tensor([t is not None for t in inputs["targets"]], device=inputs["answers"].device)
    target = torch.tensor([t or 0.0 for t in inputs["targets"]], device=inputs["answers"].device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)

    def loss_now():
        step_features = head.features(inputs["steps"])
        index = inputs["owner"].unsqueeze(-1).expand_as(step_features)
        pooled = head.features(inputs["answers"]).scatter_reduce(
            0, index, step_features, "amax", include_self=True
        )
        confidence = head.confidence(pooled).squeeze(-1)
        strategy = F.cross_entropy(
            head.strategy(step_features), inputs["strategies"], ignore_index=IGNORE_STRATEGY
        )
        conf = (
            F.binary_cross_entropy_with_logits(confidence[labelled], target[labelled])
            if bool(labelled.any())
            else confidence.sum() * 0
        )
        return strategy + conf

    with torch.no_grad():
        before = loss_now().item()
    head.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        after = loss_now().item()
    return {"steps": steps, "loss_before": round(before, 5), "loss_after": round(after, 5)}


def _last_complete_checkpoint(work_dir: Path) -> str | None:
    """The newest checkpoint written to the end (a worker killed mid-save leaves a partial
    one, which is removed); None when there is none."""
    import shutil

    while work_dir.is_dir() and (last := get_last_checkpoint(str(work_dir))):
        if all((Path(last) / name).exists() for name in ("trainer_state.json", CHECKPOINT_WEIGHTS)):
            return last
        shutil.rmtree(last)
    return None


class ProgressCallback(TrainerCallback):
    """Loss history with the composite loss' terms, to ``on_progress`` and the log."""

    def __init__(self, on_progress, terms):
        self.on_progress = on_progress
        self.terms = terms  # a callable returning the last step's terms
        self.history: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        entry = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(float(state.epoch or 0), 2),
            "loss": round(float(logs["loss"]), 5),
            **{k: round(v, 5) for k, v in self.terms().items()},
        }
        log.info("step %(step)s/%(max_steps)s loss %(loss)s", entry)
        self.history.append({k: v for k, v in entry.items() if k != "max_steps"})
        if self.on_progress:
            self.on_progress(entry)


def apply_recipe(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    if config.recipe == "full":
        for p in model.parameters():
            p.requires_grad = True
        return model
    if config.recipe == "lora-all":
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=ALL_LINEAR,
            task_type="CAUSAL_LM",
        )
    else:  # layered: the seed's recipe
        n = min(config.layered_layers, model.config.num_hidden_layers)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=["q_proj", "k_proj"],
            layers_to_transform=list(range(n)),
            modules_to_save=["lm_head"],
            task_type="CAUSAL_LM",
        )
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
    """Fine-tune the model in ``base_dir`` on ``samples``; write merged safetensors to ``out_dir``.

    The metacognition head (the base's, or a fresh one) trains beside the model when beta > 0
    and some samples carry step labels; it is saved next to the weights, marked trained.
    A checkpoint left in ``work_dir`` by an interrupted call is resumed from.
    """
    config.validate()
    torch.manual_seed(config.seed)
    lm, tokenizer = loading.load_model(base_dir)
    head = load_head(base_dir) or MetaHead(MetaHeadConfig.for_hidden(lm.config.hidden_size))
    lm = apply_recipe(lm, config)
    dataset = PairDataset(tokenizer, samples, config.max_length)
    train_head = config.beta > 0 and dataset.meta_rows > 0
    head.requires_grad_(train_head)
    model = MetaModel(lm, head)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    curriculum = None
    if config.curriculum:
        epochs = max(1, round(config.epochs)) if config.max_steps <= 0 else 1
        curriculum = CurriculumSampler(
            [r["kind"] for r in dataset.rows],
            start=config.curriculum_start,
            end=config.curriculum_end,
            epochs=epochs,
            seed=config.seed,
        )
    resume = _last_complete_checkpoint(work_dir)
    args = TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        logging_steps=1,
        save_strategy="epoch",
        save_total_limit=1,
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
        curriculum=curriculum,
    )
    progress = ProgressCallback(on_progress, lambda: trainer.last_terms)
    trainer.add_callback(progress)
    trainer.remove_callback(PrinterCallback)  # progress goes to on_progress (the run row) instead
    if resume:
        log.info("resuming from %s", resume)
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.monotonic() - started
    history = progress.history  # this call's steps (a resumed run's earlier steps are in its run row)
    lm = model.lm
    if hasattr(lm, "merge_and_unload"):
        lm = lm.merge_and_unload()
    lm.eval()
    head_fit = None
    if train_head and config.head_fit_steps > 0:
        inputs = _head_inputs(lm, dataset, PairCollator(tokenizer.pad_token_id), config.batch_size * 4)
        if inputs is not None:
            head_fit = fit_head(head, inputs, steps=config.head_fit_steps, lr=config.head_learning_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if train_head:
        head.config.trained = True
        save_head(head, out_dir)
    summary = {
        "config": config.to_dict(),
        "samples": len(dataset),
        "trainable_parameters": trainable,
        "train_loss": round(float(result.training_loss), 5),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "loss_history": history,
        "warnings": config.warnings(),
        "tokens": trainer.tokens_seen,
        "main_tokens": trainer.main_tokens,
        "tokens_per_second": round(trainer.tokens_seen / seconds, 1) if seconds else None,
        "resumed_from": Path(resume).name if resume else None,
        "meta_rows": dataset.meta_rows,
        "meta_loss": "trained" if train_head else "absent: beta is 0 or no sample carries step labels",
        "head_fit": head_fit,
        "curriculum": [round(curriculum.share(e), 3) for e in range(curriculum.epochs)]
        if curriculum
        else None,
    }
    (out_dir / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
