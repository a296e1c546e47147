"""Simulated product traffic and simulated reviewers, driving the real HTTP stack.

Both go through Django's test client: URL routing, middleware, authentication, CSRF-free
form posts and the same views a person or a product uses, without a socket. The reviewer
is the workload's reference solver: it knows the right steps for every workload prompt.
"""

from __future__ import annotations

import re

from django.test import Client

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
    import random

    rng = random.Random(seed)
    items = []
    for out in outputs:
        if rng.random() >= share:
            continue
        solved = workload.solve(out["prompt"])
        right = solved is not None and f"The answer is {solved.answer}." in out["answer"]
        items.append({"output_id": out["id"], "thumb": "up" if right else "down",
                      "idempotency_key": f"sim-{out['id']}"})
    if not items:
        return {"created": 0, "errors": 0}
    response = Client().post("/api/v1/feedback/bulk", {"items": items}, content_type="application/json",
                             headers={"Authorization": f"Bearer {api_key}"})
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


def review_queue(username: str, password: str, *, limit: int | None = None, on_each=None) -> int:
    """Log in as a reviewer and work the queue through the web pages until it is empty."""
    client = Client()
    if not client.login(username=username, password=password):
        raise RuntimeError(f"reviewer {username} cannot log in")
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
        output = ReviewItem.objects.select_related("output").get(pk=int(item_url.rstrip("/").split("/")[-1])).output
        fix = correction_for(output.steps, output.prompt)
        if fix is None:
            continue
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
