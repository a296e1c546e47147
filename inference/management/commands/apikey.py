"""Create, list and revoke product apps' API keys. A new key is printed once and never stored."""

from django.core.management.base import BaseCommand, CommandError

from cogloop.errors import ApplicationError
from inference import services
from inference.models import ApiKey, ProductApp


class Command(BaseCommand):
    help = "apikey create <app> [--name N] | apikey list | apikey revoke <prefix>"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("app")
        create.add_argument("--name", default="cli")
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args, **opts):
        if opts["action"] == "create":
            app, _ = ProductApp.objects.get_or_create(name=opts["app"])
            _, plaintext = services.api_key_create(app=app, name=opts["name"])
            self.stdout.write(plaintext)
        elif opts["action"] == "list":
            for key in ApiKey.objects.select_related("app").order_by("app__name", "created_at"):
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                self.stdout.write(f"{key.app.name:<20} cl_{key.prefix}…  {key.name:<20} {state}")
        else:
            try:
                key = services.api_key_revoke(prefix=opts["prefix"].removeprefix("cl_").split(".")[0])
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"revoked cl_{key.prefix}… of {key.app.name}")
