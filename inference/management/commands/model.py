"""The model registry by hand: register a safetensors model directory (optionally making it the
active version), register BASE_MODEL on a fresh install (idempotent: the deploy's one-off
job), list the versions."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cogloop.errors import ApplicationError
from inference import services
from inference.models import ModelVersion


class Command(BaseCommand):
    help = "model register PATH [--name NAME] [--activate] | model register-base | model list"

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
        sub.add_parser(
            "register-base",
            help="register and activate BASE_MODEL when the registry holds no version; "
            "nothing when one exists (safe to run at every deploy)",
        )
        sub.add_parser("list", help="every registered version, newest first")

    def handle(self, *args, **opts):
        if opts["action"] == "register-base":
            self.register_base()
            return
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

    def register_base(self):
        if not settings.BASE_MODEL:
            if ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
                self.stdout.write("BASE_MODEL is not set; the registry has an active version")
                return
            raise CommandError("BASE_MODEL is not set and no version is registered")
        try:
            version = services.model_version_register_base_if_empty()
        except ApplicationError as exc:
            raise CommandError(f"refused: {exc.message}") from exc
        if version is None:
            active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
            self.stdout.write(f"registry not empty; active version: {active.name if active else 'none'}")
            return
        self.stdout.write(f"registered {version.name} ({version.status}), sha256 {version.sha256}")
