"""Pretrain the shipped cogloop-tiny model from scratch (seeded, reproducible on one torch build)."""

import json
from dataclasses import fields
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand

from inference.engine.chat import STEP_LINES, STYLE_FILE
from inference.engine.loading import write_manifest
from inference.engine.tiny import TinyPretrainConfig, pretrain


class Command(BaseCommand):
    help = "Pretrain cogloop-tiny on the synthetic reasoning workload and save it as safetensors."

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", default=str(Path(settings.BASE_DIR) / "inference" / "engine" / "cogloop_tiny")
        )
        for f in fields(TinyPretrainConfig):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)

    def handle(self, *args, **opts):
        torch.set_num_threads(max(1, torch.get_num_threads()))
        config = TinyPretrainConfig(**{f.name: opts[f.name] for f in fields(TinyPretrainConfig)})
        out = Path(opts["out"])
        summary = pretrain(out, config, log=self.stdout.write)
        # cogloop-tiny writes numbered step lines: training renders corrections the same way
        (out / STYLE_FILE).write_text(json.dumps({"reasoning_style": STEP_LINES}) + "\n")
        write_manifest(out)
        self.stdout.write(f"saved {summary['parameters']:,} parameters to {out} in {summary['seconds']}s")
