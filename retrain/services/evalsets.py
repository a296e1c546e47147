"""Evaluation sets as data: imported from JSONL, held out from reviewed corrections, or the
embedded workload's held-out problems. Each change is a new immutable version.

Two line formats, detected per line:

GSM8K  {"question": str, "answer": "worked solution ... #### 72"}: the reference answer is the
       number after ``####`` (thousands separators removed); the solution is the text before
       it with the ``<<48/2=24>>`` calculator notes stripped.
plain  {"prompt": str, "answer": number or numeric str, "tags"?: [str], "solution"?: str}

Reference answers must be numbers: the evaluator (retrain.trainer.evaluate) compares the
model's final number with them, so a set it cannot score is refused at import, not at the gate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.checks import answer_value
from annotation.models import Annotation
from cogloop.draws import stable_draw
from cogloop.errors import ApplicationError
from feedback.services import prompt_fingerprint
from inference.models import ProductApp
from retrain.models import EvalItem, EvalSet, EvalSetVersion, TrainingSample

log = logging.getLogger("cogloop.retrain")

GOLDEN = "golden"  # each product app's set held out from its reviewed corrections
NAME_MAX: int = EvalSet._meta.get_field("name").max_length or 100
# At most this many bad lines are reported; a file of nothing but bad lines says so in the message.
MAX_REPORTED_LINES = 100

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_CALCULATOR_NOTE = re.compile(r"<<[^<>]*>>")


class _BadLine(ValueError):
    pass


def _number(value: object) -> str:
    """A reference answer as canonical text ("1,200" -> "1200", 72.0 -> "72")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _BadLine("answer must be a number")
    text = str(value).strip()
    if not text:
        raise _BadLine("no answer")
    if not _NUMBER.fullmatch(text):
        raise _BadLine(f"answer must be a number, got {text[:40]!r}")
    text = text.replace(",", "")
    return _canonical(Fraction(text))


def _canonical(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else repr(float(value))


def _required_text(row: dict, key: str) -> str:
    if key not in row:
        raise _BadLine(f"missing key {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise _BadLine(f"{key!r} must be a string")
    if not value.strip():
        raise _BadLine(f"empty {key!r}")
    return value.strip()


def _gsm8k_item(row: dict) -> dict:
    prompt = _required_text(row, "question")
    if "answer" not in row:
        raise _BadLine("missing key 'answer'")
    if not isinstance(row["answer"], str):
        raise _BadLine("'answer' must be a string ending in '#### <number>'")
    solution, marker, final = row["answer"].rpartition("####")
    if not marker:
        raise _BadLine("no answer: the GSM8K answer has no '#### <number>' line")
    if not final.strip():
        raise _BadLine("no answer after '####'")
    solution = _CALCULATOR_NOTE.sub("", solution).strip()
    return {"prompt": prompt, "answer": _number(final), "solution": solution, "tags": []}


def _plain_item(row: dict) -> dict:
    prompt = _required_text(row, "prompt")
    if "answer" not in row or row["answer"] is None:
        raise _BadLine("missing key 'answer'")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise _BadLine("'tags' must be a list of non-empty strings")
    solution = row.get("solution", "")
    if not isinstance(solution, str):
        raise _BadLine("'solution' must be a string")
    return {
        "prompt": prompt,
        "answer": _number(row["answer"]),
        "solution": solution.strip(),
        "tags": [t.strip() for t in tags],
    }


def parse_line(line: str) -> dict:
    """One JSONL line as a canonical item; raises ValueError saying what is wrong."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise _BadLine("not a JSON object")
    if "question" in row:
        return _gsm8k_item(row)
    if "prompt" in row:
        return _plain_item(row)
    raise _BadLine('unknown format: expected {"question", "answer"} (GSM8K) or {"prompt", "answer"} keys')


def _read_lines(lines: Iterable[str | bytes] | str | os.PathLike) -> Iterable[str | bytes]:
    if isinstance(lines, (str, os.PathLike)):
        path = Path(lines)
        if not path.is_file():
            raise ApplicationError(f"no file {path}", code="invalid_eval_set", extra={"lines": {}})
        return path.read_bytes().splitlines()
    return lines


def _parse(lines: Iterable[str | bytes]) -> list[dict]:
    items: list[dict] = []
    errors: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            errors[str(number)] = "not UTF-8 text"
            continue
        if not text.strip():
            continue  # blank lines (a trailing newline, a separator) carry nothing
        try:
            items.append(parse_line(text))
        except _BadLine as exc:
            errors[str(number)] = str(exc)
    if errors:
        shown = dict(list(errors.items())[:MAX_REPORTED_LINES])
        first = ", ".join(f"line {n}: {why}" for n, why in list(shown.items())[:3])
        raise ApplicationError(
            f"{len(errors)} bad line(s), nothing imported ({first}{', ...' if len(errors) > 3 else ''})",
            code="invalid_eval_set",
            extra={"lines": shown, "bad_lines": len(errors)},
        )
    if not items:
        raise ApplicationError("no items: the file is empty", code="invalid_eval_set", extra={"lines": {}})
    return items


def _digest(items: list[dict]) -> str:
    canonical = [{k: item[k] for k in ("prompt", "answer", "solution", "tags")} for item in items]
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


def _checked_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise ApplicationError(
            f"an eval set name has 1 to {NAME_MAX} characters",
            code="invalid_eval_set",
            extra={"fields": {"name": [f"1 to {NAME_MAX} characters"]}},
        )
    return name


def _version_create(*, name: str, app: ProductApp | None, items: list[dict], source: str) -> EvalSetVersion:
    """A new version of the set holding ``items``, or the latest one when it holds them already."""
    eval_set, _ = EvalSet.objects.get_or_create(name=name, app=app)
    # Concurrent writers of one set queue here, so version numbers never collide.
    eval_set = EvalSet.objects.select_for_update().get(pk=eval_set.pk)
    digest = _digest(items)
    latest = eval_set.versions.order_by("-number").first()
    if latest is not None and latest.sha256 == digest:
        return latest
    version = EvalSetVersion.objects.create(
        eval_set=eval_set,
        number=(latest.number + 1) if latest else 1,
        sha256=digest,
        item_count=len(items),
        source=source,
    )
    EvalItem.objects.bulk_create(
        EvalItem(
            version=version,
            position=i,
            prompt=item["prompt"],
            answer=item["answer"],
            solution=item["solution"],
            tags=item["tags"],
        )
        for i, item in enumerate(items)
    )
    return version


@transaction.atomic
def eval_set_import(
    *,
    name: str,
    lines: Iterable[str | bytes] | str | os.PathLike,
    app: ProductApp | None = None,
    source: str = EvalSetVersion.Source.IMPORT,
) -> EvalSetVersion:
    """Import JSONL (GSM8K or plain lines, see the module docstring) as the set's next version.

    ``lines`` is an iterable of lines, or a path (``str`` or ``Path``) to read. Every bad line
    is reported at once, by line number, in one ApplicationError ``invalid_eval_set``
    (``extra["lines"]``), and nothing is written. Content identical to the latest version
    returns that version: versions are made by changes, not by imports.
    """
    name = _checked_name(name)
    items = _parse(_read_lines(lines))
    return _version_create(name=name, app=app, items=items, source=source)


@transaction.atomic
def eval_set_ensure(
    *, name: str, items: list[dict], source: str, app: ProductApp | None = None
) -> EvalSetVersion:
    """The set's latest version, made from ``items`` ({"prompt", "answer", "solution"?, "tags"?})
    when the set has none yet."""
    name = _checked_name(name)
    latest = EvalSetVersion.objects.filter(eval_set__name=name, eval_set__app=app).order_by("-number").first()
    if latest is not None:
        return latest
    canonical = [
        {
            "prompt": str(item["prompt"]).strip(),
            "answer": _number(item["answer"]),
            "solution": str(item.get("solution", "")).strip(),
            "tags": list(item.get("tags", [])),
        }
        for item in items
    ]
    return _version_create(name=name, app=app, items=canonical, source=source)


def eval_set_items(*, version: EvalSetVersion) -> list[dict]:
    """The version's items in the evaluator's shape: {"prompt", "answer", "slice", "tags"}.

    An item's slice (the gate judges each slice apart) is its first tag, else the set's name.
    """
    set_name = version.eval_set.name
    return [
        {"prompt": prompt, "answer": answer, "slice": tags[0] if tags else set_name, "tags": tags}
        for prompt, answer, tags in version.items.order_by("position").values_list("prompt", "answer", "tags")
    ]


def eval_set_latest(*, name: str, app: ProductApp | None = None) -> EvalSetVersion | None:
    return (
        EvalSetVersion.objects.select_related("eval_set")
        .filter(eval_set__name=name, eval_set__app=app)
        .order_by("-number")
        .first()
    )


def eval_set_fingerprints() -> set[str]:
    """Near-duplicate keys (feedback.services.prompt_fingerprint) of every prompt any eval set
    holds or held: none of them may be trained on, or the gate would measure memory."""
    prompts = EvalItem.objects.values_list("prompt", flat=True).distinct()
    return {prompt_fingerprint(p) for p in prompts.iterator()}


@transaction.atomic
def eval_set_grow_from_review(*, annotation: Annotation) -> EvalSetVersion | None:
    """Hold an approved correction's prompt and answer out into its app's ``golden`` set.

    A stable draw on the annotation decides (share COGLOOP["GOLDEN_SHARE"]), so asking twice
    decides the same. Returns the new version, the unchanged one when the prompt (or a
    near-duplicate) is in the set already, or None when the annotation is not drawn, states no
    number, or its prompt is already training data (a prompt trained on cannot measure).
    """
    if annotation.status != Annotation.Status.APPROVED:
        raise ApplicationError(
            f"annotation {annotation.pk} is {annotation.status}, not approved", code="not_approved"
        )
    if stable_draw(GOLDEN, annotation.pk) >= settings.COGLOOP["GOLDEN_SHARE"]:
        return None
    value = answer_value(annotation.corrected_answer)
    if value is None:
        log.info("annotation %s states no number: not held out", annotation.pk)
        return None
    output = annotation.review_item.output
    if (
        TrainingSample.objects.filter(source_annotation__review_item__output__prompt=output.prompt)
        .filter(split="train")
        .exists()
    ):
        log.info("annotation %s: its prompt is training data already, not held out", annotation.pk)
        return None
    app = output.app
    EvalSet.objects.get_or_create(name=GOLDEN, app=app)
    golden = EvalSet.objects.select_for_update().get(name=GOLDEN, app=app)
    latest = golden.versions.order_by("-number").first()
    items: list[dict] = (
        [
            dict(row)
            for row in latest.items.order_by("position").values("prompt", "answer", "solution", "tags")
        ]
        if latest
        else []
    )
    fingerprint = prompt_fingerprint(output.prompt)
    if any(prompt_fingerprint(item["prompt"]) == fingerprint for item in items):
        return latest
    solution = "\n".join(str(step.get("text", "")).strip() for step in annotation.corrected_steps)
    items.append(
        {
            "prompt": output.prompt.strip(),
            "answer": _canonical(value),
            "solution": solution.strip(),
            "tags": [],
        }
    )
    return _version_create(name=GOLDEN, app=app, items=items, source=EvalSetVersion.Source.REVIEW)
