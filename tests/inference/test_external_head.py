"""Answers made elsewhere name the version that made them, and its trained head reads them."""

import json
import shutil
from pathlib import Path

import pytest

from inference import services, serving
from inference.models import Output

TINY = Path(__file__).resolve().parents[2] / "inference" / "engine" / "cogloop_tiny"
PROMPT = "Start with 42. Take away 8. What is the result?"
RIGHT = "Step 1 [deduction]: 42 - 8 = 34\n</think>\n\nThe answer is 34."
WRONG = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."


def post(client, body, key):
    return client.post(
        "/api/v1/outputs",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def headed_version(db, tmp_path):
    """The tiny model with a trained head (in its cogloop/ folder), active and loaded in the slot."""
    import torch

    from inference.engine.metahead import MetaHead, MetaHeadConfig, save_head

    source = tmp_path / "tiny-headed"
    shutil.copytree(TINY, source)
    (source / "manifest.json").unlink()
    torch.manual_seed(0)
    save_head(MetaHead(MetaHeadConfig.for_hidden(128, trained=True)), source)
    version = services.model_version_register(
        name="tiny-headed", source_dir=source, base_model_path=str(TINY)
    )
    services.model_version_promote(version=version, reason="test")
    assert serving.sync_with_registry() == version.pk
    return version


def test_the_serving_head_reads_an_answer_of_its_own_version(api_client, api_key, headed_version):
    from inference.engine.meta_serving import read_answers

    r = post(api_client, {"prompt": PROMPT, "text": WRONG, "model_version": "tiny-headed"}, api_key)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["model_version"] == "tiny-headed"
    loaded = serving.SLOT.current
    (want,) = read_answers(loaded.model, loaded.tokenizer, loaded.head, [PROMPT], [WRONG])
    assert body["head_confidence"] == pytest.approx(want["confidence"], abs=1e-5)
    assert [s["predicted_strategy"] for s in body["steps"]] == want["strategies"]
    assert body["score_parts"]["head_confidence"] == pytest.approx(want["confidence"], abs=1e-5)
    output = Output.objects.get(uuid=body["id"])
    assert output.source == Output.Source.EXTERNAL and output.model_version == headed_version


def test_a_sample_group_is_read_in_one_prefill(api_client, api_key, headed_version, monkeypatch):
    from inference.engine import meta_serving

    calls = []
    real = meta_serving.read_answers
    monkeypatch.setattr(
        meta_serving, "read_answers", lambda *a, **k: calls.append(len(a[4])) or real(*a, **k)
    )
    r = post(
        api_client,
        {"prompt": PROMPT, "samples": [RIGHT, WRONG, RIGHT], "model_version": "tiny-headed"},
        api_key,
    )
    assert r.status_code == 201, r.content
    assert calls == [3]
    outputs = r.json()["outputs"]
    assert all(0.0 < o["head_confidence"] < 1.0 for o in outputs)
    assert outputs[0]["head_confidence"] == pytest.approx(outputs[2]["head_confidence"], abs=1e-6)
    assert r.json()["model_version"] == "tiny-headed"


def test_no_head_reading_without_the_version_or_for_another_one(api_client, api_key, headed_version):
    unnamed = post(api_client, {"prompt": PROMPT, "text": WRONG}, api_key).json()
    assert unnamed["model_version"] is None and unnamed["head_confidence"] is None
    services.model_version_register(
        name="other", source_dir=services.store_path(headed_version.weights_path), base_model_path="x"
    )
    other = post(api_client, {"prompt": PROMPT, "text": WRONG, "model_version": "other"}, api_key).json()
    # the slot serves tiny-headed: other's answers are its to read, not this head's
    assert other["model_version"] == "other" and other["head_confidence"] is None


def test_a_process_without_a_model_records_the_version_and_no_head(api_client, api_key, db):
    base = services.model_version_ensure_base()
    assert serving.SLOT.current is None  # a web process: it loads no model for this
    r = post(api_client, {"prompt": PROMPT, "text": RIGHT, "model_version": base.name}, api_key)
    assert r.status_code == 201, r.content
    assert r.json()["model_version"] == base.name and r.json()["head_confidence"] is None
    assert serving.SLOT.current is None


@pytest.mark.parametrize(
    "extra",
    [
        {"model_version": "no-such-version"},
        {"model_version": 3},
        {"model_version": ""},
        {"model_version": "x" * 101},
    ],
)
def test_an_unknown_or_bad_version_is_a_400_that_writes_nothing(api_client, api_key, db, extra):
    services.model_version_ensure_base()
    for body in ({"prompt": PROMPT, "text": RIGHT}, {"prompt": PROMPT, "samples": [RIGHT, WRONG]}):
        r = post(api_client, {**body, **extra}, api_key)
        assert r.status_code == 400, r.content
        assert "model_version" in r.json()["error"]["fields"]
    assert Output.objects.count() == 0


def test_a_replay_names_the_same_output_and_reads_nothing_again(
    api_client, api_key, headed_version, monkeypatch
):
    body = {"prompt": PROMPT, "text": RIGHT, "model_version": "tiny-headed", "idempotency_key": "k1"}
    first = post(api_client, body, api_key).json()
    monkeypatch.setattr(services, "output_head_read", lambda **kw: pytest.fail("read on a replay"))
    again = post(api_client, body, api_key)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    other = post(api_client, {**body, "model_version": None}, api_key)
    assert other.status_code == 409  # the same key with another request
