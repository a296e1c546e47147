"""Evaluation sets by hand: import a JSONL file as a set's next version, list sets, show one."""

from django.core.management.base import BaseCommand, CommandError

from cogloop.errors import ApplicationError
from inference.models import ProductApp
from retrain import services
from retrain.models import EvalSet


def _app(name: str | None) -> ProductApp | None:
    if name is None:
        return None
    app = ProductApp.objects.filter(name=name).first()
    if app is None:
        raise CommandError(f"no product app named {name!r}")
    return app


class Command(BaseCommand):
    help = (
        "evalset import NAME FILE [--app APP] | evalset list | evalset show NAME [--app APP] [--items N]. "
        'FILE is JSONL: GSM8K lines {"question", "answer": "... #### 72"} or plain lines '
        '{"prompt", "answer", "tags"?, "solution"?}.'
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="import FILE as NAME's next version (same content: no new one)")
        imp.add_argument("name")
        imp.add_argument("file")
        imp.add_argument("--app", help="the product app whose set this is (default: a global set)")
        sub.add_parser("list", help="every set with its latest version")
        show = sub.add_parser("show", help="a set's versions and its latest version's first items")
        show.add_argument("name")
        show.add_argument("--app")
        show.add_argument("--items", type=int, default=5, help="how many items to print (default 5)")

    def handle(self, *args, **opts):
        if opts["action"] == "import":
            self._import(opts)
        elif opts["action"] == "list":
            self._list()
        else:
            self._show(opts)

    def _import(self, opts) -> None:
        app = _app(opts["app"])
        try:
            before = services.eval_set_latest(name=opts["name"], app=app)
            version = services.eval_set_import(name=opts["name"], lines=opts["file"], app=app)
        except ApplicationError as exc:
            for number, why in exc.extra.get("lines", {}).items():
                self.stderr.write(f"line {number}: {why}")
            raise CommandError(exc.message) from exc
        state = "unchanged" if before is not None and before.pk == version.pk else "new version"
        self.stdout.write(
            f"{version.eval_set} v{version.number} ({state}): {version.item_count} items, sha256 {version.sha256}"
        )

    def _list(self) -> None:
        sets = (
            EvalSet.objects.select_related("app").prefetch_related("versions").order_by("name", "app__name")
        )
        if not sets:
            self.stdout.write("no eval sets yet: `manage.py evalset import NAME FILE`")
        for eval_set in sets:
            latest = max(eval_set.versions.all(), key=lambda v: v.number, default=None)
            where = eval_set.app.name if eval_set.app_id else "global"
            if latest is None:
                self.stdout.write(f"{eval_set.name:<24} {where:<16} (no version)")
                continue
            self.stdout.write(
                f"{eval_set.name:<24} {where:<16} v{latest.number:<4} {latest.item_count:>6} items  "
                f"{latest.source:<9} {latest.sha256[:12]}  {latest.created_at:%Y-%m-%d %H:%M}"
            )

    def _show(self, opts) -> None:
        app = _app(opts["app"])
        eval_set = EvalSet.objects.filter(name=opts["name"], app=app).first()
        if eval_set is None:
            raise CommandError(f"no eval set named {opts['name']!r} ({opts['app'] or 'global'})")
        self.stdout.write(str(eval_set))
        versions = list(eval_set.versions.order_by("number"))
        for v in versions:
            self.stdout.write(
                f"  v{v.number}: {v.item_count} items, {v.source}, sha256 {v.sha256}, {v.created_at:%Y-%m-%d %H:%M}"
            )
        if versions:
            items = services.eval_set_items(version=versions[-1])
            for item in items[: max(0, opts["items"])]:
                self.stdout.write(f"  [{item['slice']}] {item['prompt'][:80]!r} -> {item['answer']}")
