"""The model registry by hand: register a safetensors model directory (optionally making it the
active version), list the versions."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cogloop.errors import ApplicationError
from inference import services
from inference.models import ModelVersion


class Command(BaseCommand):
    help = "model register PATH [--name NAME] [--activate] | model list"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        register = sub.add_parser(
            "register",
            help="copy a Hugging Face model directory (safetensors, config.json, tokenizer.json) "
            "into the model store with a sha256 manifest and register it",
        )
        register.add_argument("path")
        register.add_argument("--name", help="the version's name (default: the directory's name)")
        register.add_argument(
            "--activate",
            action="store_true",
            help="make it the active version: serving processes load, verify and smoke-test it, then swap",
        )
        sub.add_parser("list", help="every registered version, newest first")

    def handle(self, *args, **opts):
        if opts["action"] == "register":
            try:
                version = services.model_version_import(
                    path=Path(opts["path"]), name=opts["name"], activate=opts["activate"]
                )
            except ApplicationError as exc:
                raise CommandError(f"refused: {exc.message}") from exc
            self.stdout.write(
                f"registered {version.name} ({version.status}): {len(version.manifest)} files, "
                f"sha256 {version.sha256}"
            )
            return
        versions = ModelVersion.objects.order_by("-created_at", "-pk")
        if not versions:
            self.stdout.write("no model versions yet: `manage.py model register PATH --activate`")
        for v in versions:
            self.stdout.write(
                f"{v.name:<40} {v.status:<10} {v.recipe or '-':<10} {v.sha256[:12]}  {v.created_at:%Y-%m-%d %H:%M}"
            )
