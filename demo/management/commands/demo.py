"""The main job: one closed loop on the embedded default, measured, then serve the UI and API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.utils import timezone

from annotation import selectors as annotation_selectors
from cogloop.models import OutboxMessage
from demo import simulation
from feedback.models import ReviewItem
from inference import services as inference_services
from inference import serving
from inference.engine import workload
from inference.engine.generation import run_on_own_thread
from inference.models import ProductApp
from retrain import services as retrain_services
from retrain.embedded import register_embedded_eval_set
from retrain.models import DatasetVersion, TrainingRun
from retrain.trainer.evaluate import evaluate_items, summarize

DEMO_USERS = (("admin", "cogloop-admin", True), ("reviewer", "cogloop-review", False))


class Command(BaseCommand):
    help = "Run one closed loop (traffic -> review -> dataset -> training -> gate -> swap) and report."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="exit after the report")
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--traffic", type=int, default=400, help="simulated product requests")
        parser.add_argument("--recipe", default="lora-all")
        parser.add_argument("--epochs", type=float, default=None)
        parser.add_argument("--seed", type=int, default=4242)
        parser.add_argument(
            "--cycles",
            type=int,
            default=1,
            help="monthly cycles, each with fresh traffic, review, a dataset version and a training run",
        )

    def say(self, msg: str) -> None:
        self.stdout.write(f"[{time.monotonic() - self.t0:6.1f}s] {msg}")
        self.stdout.flush()

    def handle(self, *args, **opts):
        self.t0 = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)

        User = get_user_model()
        for username, password, staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = staff
            user.set_password(password)
            user.save()
        app, _ = ProductApp.objects.get_or_create(name="demo-shop")
        _, api_key = inference_services.api_key_create(app=app, name=f"demo {time.time():.0f}")

        base = inference_services.model_version_ensure_base()
        # the gate measures on evaluation sets: the workload's held-out problems are the demo's
        register_embedded_eval_set()
        serving.sync_with_registry()
        serving.start_watcher()
        self.say(f"serving {base.name}; stores under {settings.VAR_DIR}")

        items = retrain_services.eval_items()

        def measure(label: str) -> dict:
            loaded = serving.SLOT.current
            # on a thread that ends: its torch thread team must not outlive it beside the batcher's
            summary = summarize(run_on_own_thread(evaluate_items, loaded.model, loaded.tokenizer, items))
            self.say(f"{label}: measured {summary['overall']['n']} held-out problems")
            return summary

        if opts["cycles"] < 1:
            raise CommandError("--cycles must be at least 1")
        before = measure("before")

        worker = self.start_worker()
        # Ctrl-C and SIGTERM both unwind through the finally below, which stops the worker and
        # with it any training it runs (the default SIGTERM would leave the worker training).
        signal.signal(signal.SIGTERM, _interrupted)
        try:
            results = []
            for cycle, month in enumerate(cycle_months(opts["cycles"], timezone.now().date()), start=1):
                if opts["cycles"] > 1:
                    self.say(f"cycle {cycle} of {opts['cycles']}: month {month}")
                results.append(self.loop(opts, api_key, before, measure, cycle=cycle, month=month))
            if len(results) > 1:
                self.report_cycles(before, results)
            if not opts["no_serve"]:
                self.serve(opts, api_key)
        finally:
            self.stop_worker(worker)

    def loop(self, opts, api_key, before, measure, *, cycle: int, month: str) -> dict:
        # each cycle is a fresh draw of traffic (its own seed), as a new month's product use is
        seed = opts["seed"] + 1000 * (cycle - 1)
        skip = ReviewItem.objects.count()
        traffic = [p.prompt for p in workload.problems(opts["traffic"], seed=seed, split="train")]
        self.say(f"sending {len(traffic)} product requests to POST /api/v1/generate ...")
        outputs = simulation.send_traffic(api_key, traffic)
        fb = simulation.send_user_feedback(api_key, outputs, share=0.3, seed=seed)
        self.say(f"simulated users sent {fb['created']} thumbs through POST /api/v1/feedback/bulk")
        # The worker applies the capture policy to the feedback: wait for the queue to settle.
        deadline, last = time.monotonic() + 60, -1
        while time.monotonic() < deadline:
            count = ReviewItem.objects.count()
            if count == last and not OutboxMessage.objects.filter(sent_at__isnull=True).exists():
                break
            last = count
            time.sleep(2)
        fresh = ReviewItem.objects.order_by("pk")[skip:].values_list("pk", flat=True)
        reasons = dict(
            ReviewItem.objects.filter(pk__in=list(fresh))
            .values_list("reason")
            .annotate(n=Count("pk"))
            .values_list("reason", "n")
        )
        captured = sum(reasons.values())
        self.say(f"{captured} outputs captured into the review queue {reasons}")

        annotated = simulation.review_queue("reviewer", "cogloop-review")
        self.say(f"simulated reviewer annotated {annotated} items through the review pages")

        dataset = DatasetVersion.objects.filter(period=month).first()
        if dataset is None:
            dataset = retrain_services.dataset_version_build(period=month)
        retired = dataset.composition.get("retired", {})
        self.say(
            f"dataset {dataset.period}: {dataset.counts} (sha256 {dataset.sha256[:12]})"
            + (
                f"; retired {retired['samples']} samples of {retired['error_types']}"
                if retired.get("samples")
                else ""
            )
        )

        config = {"epochs": opts["epochs"]} if opts["epochs"] else {}
        run = retrain_services.training_run_start(
            dataset=dataset,
            recipe=opts["recipe"],
            config=config,
            period=retrain_services.quarter_of(date.fromisoformat(f"{month}-01")),
        )
        self.say(f"training run {run.pk} ({run.recipe}) queued for the Celery worker")
        run = self.wait_for_run(run)
        if run.stage != TrainingRun.Stage.DONE:
            raise CommandError(f"training run {run.pk} ended in {run.stage}: {run.error}")
        decision = run.decision
        self.say(f"gate: {'PROMOTE' if decision['promote'] else 'REJECT'} — {decision['reason']}")
        if decision["promote"]:
            deadline = time.monotonic() + 120
            while (serving.SLOT.current.version_id != run.result_version_id) and time.monotonic() < deadline:
                time.sleep(0.5)
            self.say(f"serving process swapped to {run.result_version.name}")
        after = measure("after")
        self.report(before, after, captured, annotated, dataset, run)
        return {"cycle": cycle, "month": month, "run": run, "after": after, "dataset": dataset}

    def serve(self, opts, api_key):
        self.stdout.write(
            f"\nServing the review UI and API on http://{opts['addr']}/ (Ctrl-C to stop)\n"
            f"  reviewer login: reviewer / cogloop-review     admin login: admin / cogloop-admin\n"
            f"  API key for demo-shop: {api_key}\n"
            f"  curl -X POST http://{opts['addr']}/api/v1/generate -H 'Authorization: Bearer {api_key}' "
            f"-H 'Content-Type: application/json' -d '{{\"prompt\": \"Start with 40. Take away 7. What is the result?\"}}'\n"
        )
        call_command("runserver", opts["addr"], use_reloader=False, use_threading=True)

    def start_worker(self) -> subprocess.Popen:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cogloop",
            "worker",
            "-Q",
            "training,default",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
        ]
        log = open(Path(settings.VAR_DIR) / "demo-worker.log", "ab")
        self.say(
            "started a Celery worker (it applies feedback and trains; broker: "
            f"{'Redis' if settings.REDIS_URL else 'filesystem under ' + str(settings.BROKER_DIR)})"
        )
        return subprocess.Popen(
            cmd,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
            start_new_session=True,
        )

    def stop_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    def wait_for_run(self, run):
        last = None
        while True:
            run.refresh_from_db()
            progress = run.progress or {}
            line = f"run {run.pk}: {run.stage}"
            if run.stage == TrainingRun.Stage.TRAINING and progress:
                line += (
                    f" step {progress.get('step')}/{progress.get('max_steps')} loss {progress.get('loss')}"
                )
            if line != last:
                self.say(line)
                last = line
            if run.stage in (TrainingRun.Stage.DONE, TrainingRun.Stage.FAILED):
                return run
            time.sleep(1)

    def report(self, before, after, captured, annotated, dataset, run) -> None:
        def row(name, b, a):
            return (
                f"  {name:<11} n={b['n']:<4} error rate {b['error_rate']:6.1%} -> {a['error_rate']:6.1%}   "
                f"mean cognition score {b['mean_score']:.3f} -> {a['mean_score']:.3f}"
            )

        promoted = run.decision["promote"]
        lines = ["", "Cogloop demo report (held-out problems, measured in this run)"]
        if promoted:
            lines.append("  the serving model before the loop -> after it (the candidate now serves)")
            pairs = (before, after)
        else:
            # The serving model did not change: show what the rejected candidate did instead.
            lines.append("  the serving model -> the rejected candidate, as the gate measured them")
            pairs = (run.decision["serving"], run.decision["candidate"])
        for name in ("blind_spot", "rest"):
            lines.append(row(name, pairs[0]["slices"][name], pairs[1]["slices"][name]))
        lines.append(row("overall", pairs[0]["overall"], pairs[1]["overall"]))
        capture = selectors_capture_quality()
        lines += [
            f"  review queue: {captured} captured, {annotated} annotated, "
            f"{dataset.counts.get('reflection', 0)} reflection samples in dataset {dataset.period}",
            f"  capture (audit-sample verdicts): {capture}",
            f"  training run {run.pk} ({run.period}, attempt {run.attempt}): recipe {run.recipe}, "
            f"{len(run.loss_history)} logged steps, "
            f"loss {run.loss_history[0]['loss'] if run.loss_history else '?'} -> "
            f"{run.loss_history[-1]['loss'] if run.loss_history else '?'}",
            f"  promotion: {'promoted' if promoted else 'rejected'} "
            f"{run.result_version.name if run.result_version else ''} ({run.decision['reason']})",
            f"  loop time: {time.monotonic() - self.t0:.0f}s",
        ]
        self.stdout.write("\n".join(lines) + "\n")

    def report_cycles(self, before, results) -> None:
        lines = ["", "Cycles (held-out error rate of the serving model after each cycle)"]
        lines.append(
            f"  start     overall {before['overall']['error_rate']:6.1%}  "
            f"blind_spot {before['slices']['blind_spot']['error_rate']:6.1%}"
        )
        for r in results:
            run, after = r["run"], r["after"]
            verdict = "promoted" if run.decision["promote"] else "rejected"
            lines.append(
                f"  cycle {r['cycle']} ({r['month']})  overall {after['overall']['error_rate']:6.1%}  "
                f"blind_spot {after['slices']['blind_spot']['error_rate']:6.1%}  "
                f"dataset {r['dataset'].counts.get('reflection', 0)} reflection  {verdict}: {run.decision['reason']}"
            )
        self.stdout.write("\n".join(lines) + "\n")


def cycle_months(cycles: int, today: date) -> list[str]:
    """The months the cycles stand for, oldest first, ending with this one. Three months apart:
    the demo compresses time, and each cycle's training run needs a quarter of its own (a
    quarter has one run; retries are its attempts)."""
    months = []
    for back in range(cycles - 1, -1, -1):
        index = today.year * 12 + today.month - 1 - 3 * back
        months.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
    return months


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def selectors_capture_quality() -> str:
    quality = annotation_selectors.capture_quality()
    if quality["precision"] is None:
        return "no reviewer verdicts yet"
    recall = f"{quality['recall']:.0%}" if quality["recall"] is not None else "n/a"
    return (
        f"precision {quality['precision']:.0%} of {quality['judged']} judged low-score captures were wrong; "
        f"recall {recall} of wrong answers captured (misses estimated from {quality['audited']} audited answers)"
    )
