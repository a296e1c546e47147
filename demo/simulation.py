"""Simulated product traffic and simulated reviewers, driving the real HTTP stack.

Both go through Django's test client: URL routing, middleware, authentication, CSRF-free
form posts and the same views a person or a product uses, without a socket. The reviewer
is the workload's reference solver: it knows the right steps for every workload prompt.
"""

from __future__ import annotations

import random
import re
import secrets

from django.contrib.auth import get_user_model
from django.test import Client

from annotation import services as annotation_services
from annotation.models import Annotation
from feedback.models import ReviewItem
from inference.engine import workload
from inference.engine.scoring import extract_claims


def send_traffic(api_key: str, prompts: list[str], *, on_each=None) -> list[dict]:
    client = Client()
    results = []
    for i, prompt in enumerate(prompts):
        response = client.post(
            "/api/v1/generate",
            {"prompt": prompt},
            content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        if response.status_code != 201:
            raise RuntimeError(f"generate failed with {response.status_code}: {response.content[:300]!r}")
        results.append(response.json())
        if on_each:
            on_each(i + 1)
    return results


def send_user_feedback(api_key: str, outputs: list[dict], *, share: float, seed: int) -> dict:
    """Product users who know the right answer rate a share of the answers, in one bulk call."""

    rng = random.Random(seed)
    items = []
    for out in outputs:
        if rng.random() >= share:
            continue
        solved = workload.solve(out["prompt"])
        right = solved is not None and f"The answer is {solved.answer}." in out["answer"]
        items.append(
            {
                "output_id": out["id"],
                "thumb": "up" if right else "down",
                "idempotency_key": f"sim-{out['id']}",
            }
        )
    if not items:
        return {"created": 0, "errors": 0}
    response = Client().post(
        "/api/v1/feedback/bulk",
        {"items": items},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"bulk feedback failed with {response.status_code}: {response.content[:300]!r}")
    return response.json()


def correction_for(output_steps: list[dict], prompt: str) -> dict | None:
    """What a careful reviewer submits for an output: correct steps, labels, the first wrong step."""
    solved = workload.solve(prompt)
    if solved is None:
        return None
    first_wrong = None
    error_type = "none"
    for i, correct in enumerate(solved.steps, start=1):
        original = output_steps[i - 1]["text"] if i <= len(output_steps) else None
        if original != correct.text:
            first_wrong = i
            claims = extract_claims(i, original or "")
            error_type = "arithmetic" if claims and not all(c.correct for c in claims) else "wrong_operation"
            break
    if first_wrong is None and len(output_steps) != len(solved.steps):
        first_wrong, error_type = len(solved.steps) + 1, "missing_step"
    elif first_wrong is None:
        error_type = "inconsistent_answer"  # right steps, wrong answer
    return {
        "steps": [{"text": s.text, "strategy": s.strategy} for s in solved.steps],
        "answer": f"The answer is {solved.answer}.",
        "first_wrong_step": first_wrong,
        "error_type": error_type,
    }


def _team_member(username: str, role: str) -> tuple[str, str]:
    """A simulated colleague with ``role`` and a fresh password (the demo's helpers, not people)."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    password = secrets.token_urlsafe(16)
    user.set_password(password)
    user.save()
    annotation_services.user_role_grant(user=user, role=role)
    return username, password


def _login(username: str, password: str) -> Client:
    client = Client()
    if not client.login(username=username, password=password):
        raise RuntimeError(f"{username} cannot log in")
    return client


def _work_queue(client: Client, *, limit: int | None, on_each=None, correction=correction_for) -> int:
    """Claim the next item and submit its correction through the item page, until none is left."""
    done = 0
    while limit is None or done < limit:
        response = client.post("/review/next")
        if response.status_code != 302 or "/review/" == response.url:
            break
        item_url = response.url
        page = client.get(item_url)
        if page.status_code != 200:
            raise RuntimeError(f"item page {item_url} answered {page.status_code}")
        # The page shows the output; the simulated reviewer reads the same row directly.
        output = (
            ReviewItem.objects.select_related("output")
            .get(pk=int(item_url.rstrip("/").split("/")[-1]))
            .output
        )
        fix = correction(output.steps, output.prompt)
        if fix is None:
            continue  # nothing to say about it: left claimed, so "next" moves on; the lease runs out
        data = {
            "steps-TOTAL_FORMS": str(len(fix["steps"])),
            "steps-INITIAL_FORMS": "0",
            "steps-MIN_NUM_FORMS": "0",
            "steps-MAX_NUM_FORMS": "1000",
            "corrected_answer": fix["answer"],
            "first_wrong_step": fix["first_wrong_step"] or "",
            "error_type": fix["error_type"],
            "correction_strategy": "recompute each step; 'take away' means subtract",
            "confidence_low": "0.9",
            "confidence_high": "1.0",
            "transparent": "yes",
        }
        for i, step in enumerate(fix["steps"]):
            data[f"steps-{i}-text"] = step["text"]
            data[f"steps-{i}-strategy"] = step["strategy"]
            data[f"steps-{i}-ORDER"] = str(i + 1)
        result = client.post(item_url, data)
        if result.status_code != 302:
            errors = re.findall(r'<ul class="errorlist[^"]*">(.*?)</ul>', result.content.decode(), re.S)
            raise RuntimeError(f"submitting {item_url} failed: {errors}")
        done += 1
        if on_each:
            on_each(done)
    return done


def _second_review(client: Client) -> int:
    """A lead approves every annotation waiting for second review, through the review pages."""
    approved = 0
    while True:
        listing = client.get("/review/second/")
        if listing.status_code != 200:
            raise RuntimeError(f"the second review page answered {listing.status_code}")
        ids = [int(i) for i in re.findall(r'data-annotation="(\d+)"', listing.content.decode())]
        if not ids:
            return approved
        for annotation_id in ids:
            url = f"/review/annotations/{annotation_id}/"
            if client.get(url).status_code != 200:
                raise RuntimeError(f"{url} did not open")
            # The form on the page is filled with the annotation; the lead sends it back unchanged.
            a = Annotation.objects.get(pk=annotation_id)
            data = {
                "decision": "approve",
                "reason": "",
                "steps-TOTAL_FORMS": str(len(a.corrected_steps)),
                "steps-INITIAL_FORMS": "0",
                "steps-MIN_NUM_FORMS": "0",
                "steps-MAX_NUM_FORMS": "1000",
                "corrected_answer": a.corrected_answer,
                "first_wrong_step": a.first_wrong_step or "",
                "error_type": a.error_type,
                "correction_strategy": a.correction_strategy,
                "confidence_low": a.confidence_low,
                "confidence_high": a.confidence_high,
                "transparent": "yes" if a.transparent else "no",
            }
            for i, step in enumerate(a.corrected_steps):
                data[f"steps-{i}-text"] = step["text"]
                data[f"steps-{i}-strategy"] = step["strategy"]
                data[f"steps-{i}-ORDER"] = str(i + 1)
            result = client.post(url, data)
            if result.status_code != 302:
                raise RuntimeError(f"approving annotation {annotation_id} failed ({result.status_code})")
            approved += 1


def review_queue(
    username: str, password: str, *, limit: int | None = None, on_each=None, correction=None
) -> int:
    """Log in as a reviewer and work the queue through the web pages until it is empty (or
    ``limit`` items are done).

    The reviewer works with two simulated colleagues, as the review policy expects: another
    reviewer (``<username>-blind``) who gives the blind second annotation of the items drawn
    for double annotation, and a lead (``<username>-lead``) who approves the annotations drawn
    for second review. Returns how many items ``username`` annotated. ``correction(steps,
    prompt)`` says what to submit (default: the workload's solver, ``correction_for``).
    """
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise RuntimeError(f"reviewer {username} does not exist")
    annotation_services.user_role_grant(user=user, role=annotation_services.REVIEWER)
    blind = _login(*_team_member(f"{username}-blind", annotation_services.REVIEWER))
    lead = _login(*_team_member(f"{username}-lead", annotation_services.LEAD))
    correction = correction or correction_for
    done = _work_queue(_login(username, password), limit=limit, on_each=on_each, correction=correction)
    if limit is None:  # with a limit the queue is not finished, so the colleagues wait too
        _work_queue(blind, limit=None, correction=correction)
        _second_review(lead)
    return done
