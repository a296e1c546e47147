"""Training samples from approved annotations, and the monthly immutable dataset versions."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Annotation
from cogloop.errors import ApplicationError
from feedback.services import prompt_fingerprint
from inference.engine import chat
from retrain import embedded, periods, selectors
from retrain.models import DatasetVersion, TrainingSample
from retrain.services import evalsets

log = logging.getLogger("cogloop.retrain")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _response(steps: list[dict], answer: str, *, style: str = chat.STEP_LINES) -> str:
    """The corrected response as a model of ``style`` writes it (the stored samples and the
    exports use step lines; a run renders again in its base model's style)."""
    return chat.render_response([chat.Step(s["strategy"], s["text"]) for s in steps], answer, style=style)


def held_out_fingerprints() -> set[str]:
    """Near-duplicate keys of every held-out prompt the gate measures with: the embedded
    workload's and every eval set's (imported ones and the apps' golden sets)."""
    embedded_keys = {prompt_fingerprint(item["prompt"]) for item in embedded.eval_items()}
    return embedded_keys | evalsets.eval_set_fingerprints()


@transaction.atomic
def training_samples_collect() -> int:
    """Turn approved annotations without samples into reflection, strategy and uncertainty
    samples. A prompt that is a held-out problem or a near-duplicate of one (same text up to
    case, punctuation and spacing) is kept with split "eval" and never enters a dataset.
    First, a share of the approved corrections (GOLDEN_SHARE, a stable draw) is held out into
    the app's golden evaluation set: its corrected answer is a reviewer-verified reference."""
    created = 0
    annotations = (
        Annotation.objects.filter(status=Annotation.Status.APPROVED, training_samples__isnull=True)
        .select_related("review_item__output")
        .order_by("pk")
    )
    held_out = held_out_fingerprints()
    for a in annotations:
        output = a.review_item.output
        prompt = output.prompt
        fingerprint = prompt_fingerprint(prompt)
        if fingerprint not in held_out and evalsets.eval_set_grow_from_review(annotation=a) is not None:
            held_out.add(fingerprint)
        # Never train on a held-out problem, also not on a re-worded copy of one.
        split = "eval" if fingerprint in held_out else embedded.split_of(prompt)
        chosen = _response(a.corrected_steps, a.corrected_answer)
        payloads = {
            TrainingSample.Kind.REFLECTION: {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": output.raw_text,
                "error_type": a.error_type,
                "first_wrong_step": a.first_wrong_step,
            },
            TrainingSample.Kind.STRATEGY: {"prompt": prompt, "steps": a.corrected_steps},
            TrainingSample.Kind.UNCERTAINTY: {
                "prompt": prompt,
                "answer": a.corrected_answer,
                "low": a.confidence_low,
                "high": a.confidence_high,
            },
        }
        for kind, payload in payloads.items():
            _, was_created = TrainingSample.objects.get_or_create(
                kind=kind,
                content_hash=_hash({"prompt": prompt, "kind": kind}),
                defaults={"payload": payload, "source_annotation": a, "split": split},
            )
            created += was_created
    return created


def current_period(today: date | None = None) -> str:
    return periods.current_month(today or timezone.now().date())


@transaction.atomic
def dataset_version_build(*, period: str | None = None) -> DatasetVersion:
    """The month's immutable dataset: the previous version's samples plus the new ones."""
    period = periods.month_checked(period or current_period(), today=timezone.now().date())
    training_samples_collect()
    if DatasetVersion.objects.filter(period=period).exists():
        raise ApplicationError(
            f"dataset version {period} exists and is immutable", code="dataset_exists", status=409
        )
    parent = DatasetVersion.objects.filter(period__lt=period).order_by("-period").first()
    # A lead's withdrawal takes an annotation's samples out of every version from now on.
    withdrawn = TrainingSample.objects.filter(source_annotation__status=Annotation.Status.WITHDRAWN)
    inherited = set(parent.samples.values_list("pk", flat=True)) if parent else set()
    dropped = set(withdrawn.filter(pk__in=inherited).values_list("pk", flat=True))
    # Samples of an error class the serving model no longer makes stay in history, out of training.
    retired_types = selectors.retired_error_types()
    retiring = TrainingSample.objects.filter(source_annotation__error_type__in=retired_types)
    retired = set(retiring.filter(pk__in=inherited).values_list("pk", flat=True)) - dropped
    old_ids = inherited - dropped - retired
    new = list(
        TrainingSample.objects.exclude(pk__in=inherited)
        .exclude(pk__in=withdrawn.values("pk"))
        .exclude(pk__in=retiring.values("pk"))
        .filter(split="train")
        .select_related("source_annotation__review_item__output")
    )
    if not new and not dropped and not retired:
        raise ApplicationError(
            "no new approved samples since the last dataset version", code="no_new_samples"
        )
    # Growth is capped (DATASET_MAX_GROWTH of the previous version, by annotation); what does
    # not fit carries over to the next month. What fits is balanced: one annotation at a time
    # from each (error type, strategy) group in turn, the weakest original answer (lowest
    # cognition score) first within a group, so a month of one error class cannot crowd out
    # the others, and verified-right answers (audit approvals, error type "none") get their turn.
    ranked = _balanced(new)
    if parent:
        parent_annotations = len({a for a in parent.samples.values_list("source_annotation_id", flat=True)})
        room = max(1, int(parent_annotations * settings.COGLOOP["DATASET_MAX_GROWTH"]))
        ranked = ranked[:room]
    ids = sorted(old_ids | {s.pk for group in ranked for s in group})
    samples = list(TrainingSample.objects.filter(pk__in=ids).order_by("pk"))
    out_dir = Path(settings.VAR_DIR) / "datasets" / period
    files = _export(out_dir, samples)
    digest = _hash([[s.kind, s.content_hash] for s in samples])
    held_out = TrainingSample.objects.exclude(pk__in=inherited).filter(split="eval").count()
    version = DatasetVersion.objects.create(
        period=period,
        parent=parent,
        counts=_kind_counts(samples),
        composition={
            **_composition(samples),
            "held_out_excluded": held_out,
            "carried_over": len(new) - (len(ids) - len(old_ids)),
            "retired": {
                "error_types": sorted(retired_types),
                "samples": len(retired),
            },
            "withdrawn": {
                "samples": len(dropped),
                "annotations": sorted(
                    set(
                        TrainingSample.objects.filter(pk__in=dropped).values_list(
                            "source_annotation_id", flat=True
                        )
                    )
                ),
            },
        },
        growth=(len(ids) - len(old_ids)) / len(old_ids) if old_ids else None,
        sha256=digest,
        files=files,
    )
    version.samples.set(samples)
    return version


def _balanced(samples: list[TrainingSample]) -> list[list[TrainingSample]]:
    """Annotations' sample groups in admission order: round robin over (error type, main
    strategy) groups, each ordered weakest answer first, then oldest."""
    by_annotation: dict[int, list[TrainingSample]] = {}
    for sample in samples:
        by_annotation.setdefault(sample.source_annotation_id, []).append(sample)
    buckets: dict[tuple[str, str], list[list[TrainingSample]]] = {}
    for group in by_annotation.values():
        annotation = group[0].source_annotation
        strategies = [s.get("strategy", "other") for s in annotation.corrected_steps]
        main = max(sorted(set(strategies)), key=strategies.count) if strategies else "other"
        buckets.setdefault((annotation.error_type, main), []).append(group)
    queues = [
        sorted(
            groups,
            key=lambda g: (
                g[0].source_annotation.review_item.output.cognition_score,
                g[0].source_annotation_id,
            ),
        )
        for _, groups in sorted(buckets.items())
    ]
    ranked: list[list[TrainingSample]] = []
    while any(queues):
        for queue in queues:
            if queue:
                ranked.append(queue.pop(0))
    return ranked


def _kind_counts(samples: list[TrainingSample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts


def _composition(samples: list[TrainingSample]) -> dict:
    """Step counts by strategy (strategy samples) and reflection counts by error type."""
    strategies: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in samples:
        if s.kind == TrainingSample.Kind.STRATEGY:
            for step in s.payload["steps"]:
                strategies[step["strategy"]] = strategies.get(step["strategy"], 0) + 1
        elif s.kind == TrainingSample.Kind.REFLECTION:
            errors[s.payload["error_type"]] = errors.get(s.payload["error_type"], 0) + 1
    return {"strategy_steps": strategies, "error_types": errors}


def _export(out_dir: Path, samples: list[TrainingSample]) -> dict:
    """JSONL files a training stack reads as they are (``datasets.load_dataset("json")``):

    sft.jsonl          {"messages": [user, assistant]}: the corrected responses (chat SFT)
    preference.jsonl   {"prompt": [user], "chosen": [assistant], "rejected": [assistant]}: TRL's
                       conversational preference format (DPO, ORPO, ...)
    strategy.jsonl     {"prompt", "steps": [{"text", "strategy"}]}
    uncertainty.jsonl  {"prompt", "answer", "low", "high"}
    Returns {name: {"path", "rows", "sha256"}}.
    """
    rows: dict[str, list[dict]] = {"sft": [], "preference": [], "strategy": [], "uncertainty": []}
    for s in samples:
        p = s.payload
        user = [{"role": "user", "content": p["prompt"]}]
        if s.kind == TrainingSample.Kind.REFLECTION:
            chosen = [{"role": "assistant", "content": p["chosen"]}]
            rows["sft"].append({"messages": user + chosen})
            if p.get("error_type") == "none":
                continue  # a verified-right answer: nothing to prefer it over
            rows["preference"].append(
                {
                    "prompt": user,
                    "chosen": chosen,
                    "rejected": [{"role": "assistant", "content": p["rejected"]}],
                }
            )
        elif s.kind == TrainingSample.Kind.STRATEGY:
            rows["strategy"].append({"prompt": p["prompt"], "steps": p["steps"]})
        else:
            rows["uncertainty"].append({k: p[k] for k in ("prompt", "answer", "low", "high")})
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, items in rows.items():
        path = out_dir / f"{name}.jsonl"
        data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
        path.write_bytes(data)
        files[name] = {"path": str(path), "rows": len(items), "sha256": hashlib.sha256(data).hexdigest()}
    return files


def dataset_version_build_monthly() -> DatasetVersion | None:
    """The beat entry: this month's version, or nothing (said in the log) when there is no news."""
    period = current_period()
    if DatasetVersion.objects.filter(period=period).exists():
        return None
    try:
        return dataset_version_build(period=period)
    except ApplicationError as exc:
        log.info("no dataset version for %s: %s", period, exc.message)
        return None


def dataset_version_verify_files(dataset: DatasetVersion) -> None:
    """Raise unless every exported file still has the sha256 recorded at export: a run must
    not train on files changed (or lost) since the version was built."""
    for name, meta in sorted((dataset.files or {}).items()):
        path = Path(meta["path"])
        actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if actual != meta["sha256"]:
            raise ApplicationError(
                f"dataset {dataset.period} file {name} ({path}) changed since export:"
                f" sha256 {actual[:12]} != recorded {meta['sha256'][:12]}",
                code="dataset_changed",
                status=409,
            )
