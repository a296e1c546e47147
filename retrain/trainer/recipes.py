"""Which weights a fine-tune trains: the recipes of TrainConfig.recipe."""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import ALL_LINEAR, TrainConfig


def apply_recipe(model: nn.Module, config: TrainConfig) -> nn.Module:
    """The model to train: ``full`` marks every weight trainable, the LoRA recipes wrap it in peft."""
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
        model_config: Any = model.config  # a transformers config; nn.Module does not declare it
        n = min(config.layered_layers, model_config.num_hidden_layers)
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
