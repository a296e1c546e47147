"""The monthly and quarterly jobs by hand: build a dataset version, start or inspect a training run."""

import json

from django.core.management.base import BaseCommand, CommandError

from cogloop.errors import ApplicationError
from retrain import services
from retrain.models import DatasetVersion, TrainingRun


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise CommandError(f"--set takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class Command(BaseCommand):
    help = (
        "retrain dataset [--period YYYY-MM] | retrain train [--recipe R] [--period YYYY-Qn] [--set key=value ...] "
        "[--now] | retrain retry RUN_ID [--recipe R] [--set key=value ...] [--now] | retrain status"
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        dataset = sub.add_parser("dataset", help="build this month's (or --period's) dataset version")
        dataset.add_argument("--period")
        train = sub.add_parser("train", help="start a training run on the latest dataset version")
        train.add_argument("--recipe", default="lora-all")
        train.add_argument("--period")
        train.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a training option (retrain.trainer.config.TrainConfig), e.g. --set epochs=4",
        )
        train.add_argument(
            "--now", action="store_true", help="run in this process instead of on the training queue"
        )
        retry = sub.add_parser("retry", help="another attempt at a failed or rejected run, in its period")
        retry.add_argument("run_id", type=int)
        retry.add_argument("--recipe")
        retry.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        retry.add_argument("--now", action="store_true")
        sub.add_parser("status", help="dataset versions and training runs")

    def handle(self, *args, **opts):
        try:
            if opts["action"] == "dataset":
                version = services.dataset_version_build(period=opts["period"])
                self.stdout.write(
                    f"dataset {version.period}: {version.counts} growth {version.growth} "
                    f"sha256 {version.sha256}"
                )
            elif opts["action"] == "train":
                dataset = DatasetVersion.objects.order_by("-period").first()
                if dataset is None:
                    raise CommandError("no dataset version yet: run `manage.py retrain dataset` first")
                config = dict(_option(o) for o in opts["set"])
                run = services.training_run_start(
                    dataset=dataset,
                    recipe=opts["recipe"],
                    period=opts["period"],
                    config=config,
                    enqueue=not opts["now"],
                )
                self.stdout.write(
                    f"training run {run.pk} ({run.period}, {run.recipe}) on dataset {dataset.period}"
                )
                if opts["now"]:
                    run = services.training_run_execute(run_id=run.pk)
                    self.stdout.write(f"run {run.pk}: {run.stage}; {run.decision.get('reason', run.error)}")
            elif opts["action"] == "retry":
                run = services.training_run_retry(
                    run_id=opts["run_id"],
                    recipe=opts["recipe"],
                    config=dict(_option(o) for o in opts["set"]) or None,
                    enqueue=not opts["now"],
                )
                self.stdout.write(f"training run {run.pk} ({run.period}): attempt {run.attempt} queued")
                if opts["now"]:
                    run = services.training_run_execute(run_id=run.pk)
                    self.stdout.write(f"run {run.pk}: {run.stage}; {run.decision.get('reason', run.error)}")
            else:
                for v in DatasetVersion.objects.order_by("period"):
                    self.stdout.write(f"dataset {v.period}: {v.counts} growth {v.growth}")
                for r in TrainingRun.objects.order_by("created_at"):
                    self.stdout.write(
                        f"run {r.pk} {r.period} {r.recipe}: {r.stage} "
                        f"{r.decision.get('reason', '') or r.error}"
                    )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
