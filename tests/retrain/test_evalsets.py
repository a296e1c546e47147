"""Evaluation sets are data: JSONL imports in GSM8K's format and a plain one, every bad line
named and nothing imported, versions made by changes only, golden sets held out from reviewed
corrections and kept out of training, the embedded set, the command and the admin import."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation import services as annotation_services
from annotation.models import Annotation
from cogloop.draws import stable_draw
from cogloop.errors import ApplicationError
from feedback import services as feedback_services
from inference import services as inference_services
from inference.engine import workload
from retrain import embedded, services
from retrain.models import EvalItem, EvalSet, EvalSetVersion, TrainingSample

GSM8K = Path(__file__).resolve().parent.parent / "fixtures" / "gsm8k_excerpt.jsonl"


def _plain(*rows: dict) -> list[str]:
    return [json.dumps(r) for r in rows]


def test_gsm8k_lines_import_with_the_final_number_and_a_clean_solution(db):
    version = services.eval_set_import(name="gsm8k", lines=GSM8K)
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    assert (version.number, version.item_count, version.source) == (1, len(rows), "import")
    assert len(version.sha256) == 64 and version.eval_set.app is None
    first = version.items.get(position=0)
    assert first.prompt == rows[0]["question"]
    assert first.answer == "72"
    assert first.solution.startswith("Natalia sold 48/2 = 24 clips in May.")
    assert "<<" not in first.solution and "####" not in first.solution
    items = services.eval_set_items(version=version)
    assert items[0] == {"prompt": rows[0]["question"], "answer": "72", "slice": "gsm8k", "tags": []}
    # every reference answer is a number the evaluator can compare (no thousands separators)
    assert all(float(item["answer"]) == float(item["answer"].replace(",", "")) for item in items)
    assert not any("," in item["answer"] for item in items)


def test_thousands_separators_are_removed_from_a_gsm8k_answer(db):
    line = json.dumps({"question": "How many?", "answer": "1,000 + 234 = <<1000+234=1234>>1,234\n#### 1,234"})
    version = services.eval_set_import(name="big", lines=[line])
    item = version.items.get()
    assert (item.answer, item.solution) == ("1234", "1,000 + 234 = 1,234")


def test_plain_lines_import_with_tags_as_slices_and_mix_with_gsm8k(db):
    lines = [
        *_plain(
            {"prompt": "Start with 3. Add 4.", "answer": 7, "tags": ["addition", "easy"]},
            {"prompt": "Halve 5.", "answer": "2.5", "solution": "5 / 2 = 2.5"},
        ),
        "",  # a blank line carries nothing
        GSM8K.read_text().splitlines()[0],
    ]
    version = services.eval_set_import(name="mine", lines=lines)
    items = services.eval_set_items(version=version)
    assert [(i["answer"], i["slice"], i["tags"]) for i in items] == [
        ("7", "addition", ["addition", "easy"]),
        ("2.5", "mine", []),
        ("72", "mine", []),
    ]
    assert version.items.get(position=1).solution == "5 / 2 = 2.5"


def test_every_bad_line_is_reported_by_number_and_nothing_is_imported(db):
    lines = [
        *_plain({"prompt": "fine", "answer": 1}),
        "{not json",
        json.dumps({"question": "no answer key"}),
        json.dumps({"prompt": "   ", "answer": 3}),
        json.dumps({"question": "no final line", "answer": "2 + 2 = 4"}),
        json.dumps({"text": "what format is this", "label": 4}),
        json.dumps({"prompt": "capital of France?", "answer": "Paris"}),
        json.dumps(["a", "list"]),
        json.dumps({"prompt": "bad tags", "answer": 1, "tags": "one"}),
    ]
    with pytest.raises(ApplicationError) as exc:
        services.eval_set_import(name="broken", lines=lines)
    assert exc.value.code == "invalid_eval_set"
    bad = exc.value.extra["lines"]
    assert sorted(bad, key=int) == ["2", "3", "4", "5", "6", "7", "8", "9"]
    assert "not JSON" in bad["2"]
    assert "missing key 'answer'" in bad["3"]
    assert "empty 'prompt'" in bad["4"]
    assert "no answer" in bad["5"]
    assert "unknown format" in bad["6"]
    assert "must be a number" in bad["7"]
    assert "not a JSON object" in bad["8"]
    assert "tags" in bad["9"]
    assert "8 bad line(s)" in exc.value.message
    assert not EvalSet.objects.exists() and not EvalItem.objects.exists()


def test_a_bad_import_leaves_the_existing_version_as_it_was(db):
    first = services.eval_set_import(name="s", lines=_plain({"prompt": "a", "answer": 1}))
    with pytest.raises(ApplicationError):
        services.eval_set_import(name="s", lines=[*_plain({"prompt": "b", "answer": 2}), "oops"])
    assert list(EvalSetVersion.objects.values_list("pk", flat=True)) == [first.pk]
    assert [i["prompt"] for i in services.eval_set_items(version=first)] == ["a"]


def test_an_empty_file_or_a_missing_file_is_refused(db, tmp_path):
    with pytest.raises(ApplicationError, match="no items"):
        services.eval_set_import(name="s", lines=["", "  "])
    with pytest.raises(ApplicationError, match="no file"):
        services.eval_set_import(name="s", lines=tmp_path / "absent.jsonl")
    with pytest.raises(ApplicationError, match="name"):
        services.eval_set_import(name=" ", lines=_plain({"prompt": "a", "answer": 1}))
    assert not EvalSet.objects.exists()


def test_same_content_makes_no_new_version_and_a_change_makes_the_next(db, tmp_path):
    first = services.eval_set_import(name="gsm8k", lines=GSM8K)
    again = services.eval_set_import(name="gsm8k", lines=str(GSM8K))  # a path as text, too
    assert again.pk == first.pk and EvalSetVersion.objects.count() == 1
    changed = tmp_path / "changed.jsonl"
    changed.write_text(GSM8K.read_text() + json.dumps({"prompt": "one more", "answer": 5}) + "\n")
    second = services.eval_set_import(name="gsm8k", lines=changed)
    assert (second.number, second.item_count) == (2, first.item_count + 1)
    assert second.sha256 != first.sha256
    first.refresh_from_db()
    assert first.items.count() == first.item_count  # the earlier version is untouched


def test_an_apps_set_and_a_global_set_share_a_name(product_app):
    global_version = services.eval_set_import(name="checkout", lines=_plain({"prompt": "a", "answer": 1}))
    app_version = services.eval_set_import(
        name="checkout", lines=_plain({"prompt": "b", "answer": 2}), app=product_app
    )
    assert global_version.eval_set != app_version.eval_set
    assert app_version.eval_set.app == product_app and app_version.number == 1
    again = services.eval_set_import(name="checkout", lines=_plain({"prompt": "c", "answer": 3}))
    assert again.eval_set == global_version.eval_set and again.number == 2
    assert EvalSet.objects.filter(name="checkout", app=None).count() == 1


def test_the_embedded_workload_set_is_registered_once(db, settings):
    version = embedded.register_embedded_eval_set()
    items = services.eval_set_items(version=version)
    expected = embedded.eval_items()
    assert version.eval_set.name == "workload-heldout" and version.eval_set.app is None
    assert version.source == "embedded" and version.item_count == len(expected)
    assert [(i["prompt"], i["answer"], i["slice"]) for i in items] == [
        (e["prompt"], str(e["answer"]), e["slice"]) for e in expected
    ]
    assert embedded.register_embedded_eval_set().pk == version.pk
    assert EvalSetVersion.objects.count() == 1


# golden sets: held out from reviewed corrections, kept out of training

WRONG = "Step 1 [deduction]: 10 - 1 = 12\n</think>\n\nThe answer is 12."


@pytest.fixture
def annotate(product_app, reviewer, policy):
    policy(second=0.0)

    def make(prompt: str, *, answer: str = "The answer is 9.", step: str = "10 - 1 = 9") -> Annotation:
        output = inference_services.output_create(app=product_app, prompt=prompt, raw_text=WRONG)
        item = output.review_item
        feedback_services.review_item_claim(item_id=item.pk, user=reviewer)
        annotation = annotation_services.annotation_submit(
            item_id=item.pk,
            annotator=reviewer,
            corrected_steps=[{"text": step, "strategy": "deduction"}],
            corrected_answer=answer,
            error_type="arithmetic",
            confidence_low=0.8,
            confidence_high=0.9,
            transparent=True,
        )
        assert annotation.status == Annotation.Status.APPROVED
        return annotation

    return make


@pytest.fixture
def prompts():
    return [p.prompt for p in workload.problems(20, seed=5, split="train")]


def test_a_drawn_correction_grows_the_apps_golden_set(annotate, prompts, settings, product_app):
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 1.0}
    first = services.eval_set_grow_from_review(annotation=annotate(prompts[0]))
    assert (first.eval_set.name, first.eval_set.app, first.number, first.source) == (
        "golden",
        product_app,
        1,
        "review",
    )
    assert services.eval_set_items(version=first) == [
        {"prompt": prompts[0], "answer": "9", "slice": "golden", "tags": []}
    ]
    assert first.items.get().solution == "10 - 1 = 9"
    second_annotation = annotate(prompts[1], answer="1,250", step="1,000 + 250 = 1,250")
    second = services.eval_set_grow_from_review(annotation=second_annotation)
    assert second.number == 2
    assert [i["answer"] for i in services.eval_set_items(version=second)] == ["9", "1250"]
    # asking again about the same correction changes nothing
    assert services.eval_set_grow_from_review(annotation=second_annotation).pk == second.pk
    assert EvalSetVersion.objects.count() == 2


def test_the_golden_share_decides_by_a_stable_draw(annotate, prompts, settings):
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 0.0}
    annotation = annotate(prompts[0])
    assert services.eval_set_grow_from_review(annotation=annotation) is None
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 0.5}
    drawn = stable_draw("golden", annotation.pk) < 0.5
    assert (services.eval_set_grow_from_review(annotation=annotation) is not None) == drawn
    assert (services.eval_set_grow_from_review(annotation=annotation) is not None) == drawn


def test_only_an_approved_correction_with_a_number_is_held_out(annotate, prompts, settings):
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 1.0}
    annotation = annotate(prompts[0])
    annotation.status = Annotation.Status.REJECTED
    with pytest.raises(ApplicationError) as exc:
        services.eval_set_grow_from_review(annotation=annotation)
    assert exc.value.code == "not_approved"
    assert services.eval_set_grow_from_review(annotation=annotate(prompts[1], answer="nine")) is None
    assert not EvalSet.objects.exists()


def test_golden_prompts_and_their_near_duplicates_never_reach_training(annotate, prompts, settings):
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 1.0}
    held = annotate(prompts[0])
    assert services.eval_set_grow_from_review(annotation=held) is not None
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 0.0}
    reworded = annotate(f"  {prompts[0].upper().rstrip('?')} ?!")  # same up to case, punctuation, spaces
    trained = annotate(prompts[1])
    services.training_samples_collect()
    splits = dict(TrainingSample.objects.values_list("source_annotation_id", "split").distinct())
    assert splits[held.pk] == "eval"
    assert splits[reworded.pk] == "eval"
    assert splits[trained.pk] == "train"


def test_an_imported_sets_prompts_are_kept_out_of_training_too(annotate, prompts):
    services.eval_set_import(name="product", lines=_plain({"prompt": prompts[2], "answer": 9}))
    annotation = annotate(prompts[2])
    services.training_samples_collect()
    splits = TrainingSample.objects.filter(source_annotation=annotation).values_list("split", flat=True)
    assert set(splits) == {"eval"}


def test_a_prompt_already_trained_on_is_not_held_out(annotate, prompts, settings):
    annotation = annotate(prompts[0])
    services.training_samples_collect()
    assert TrainingSample.objects.filter(source_annotation=annotation, split="train").exists()
    settings.COGLOOP = {**settings.COGLOOP, "GOLDEN_SHARE": 1.0}
    assert services.eval_set_grow_from_review(annotation=annotation) is None


# the command and the admin


def test_the_command_imports_lists_and_shows(product_app, tmp_path):
    out = StringIO()
    call_command("evalset", "import", "gsm8k", str(GSM8K), stdout=out)
    assert "gsm8k (global) v1 (new version)" in out.getvalue()
    out = StringIO()
    call_command("evalset", "import", "gsm8k", str(GSM8K), stdout=out)
    assert "v1 (unchanged)" in out.getvalue()
    plain = tmp_path / "shop.jsonl"
    plain.write_text("\n".join(_plain({"prompt": "Add 2 and 2.", "answer": 4, "tags": ["add"]})) + "\n")
    call_command("evalset", "import", "checkout", str(plain), "--app", "shop", stdout=StringIO())
    out = StringIO()
    call_command("evalset", "list", stdout=out)
    listing = out.getvalue()
    assert "gsm8k" in listing and "global" in listing and "checkout" in listing and "shop" in listing
    out = StringIO()
    call_command("evalset", "show", "checkout", "--app", "shop", stdout=out)
    assert "v1: 1 items, import" in out.getvalue() and "[add] 'Add 2 and 2.' -> 4" in out.getvalue()


def test_the_command_names_each_bad_line_and_imports_nothing(db, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "answer": 1}\nnot json\n{"prompt": "x"}\n')
    err = StringIO()
    with pytest.raises(CommandError, match="2 bad line"):
        call_command("evalset", "import", "s", str(bad), stderr=err)
    assert "line 2: not JSON" in err.getvalue() and "line 3: missing key 'answer'" in err.getvalue()
    with pytest.raises(CommandError, match="no product app"):
        call_command("evalset", "import", "s", str(GSM8K), "--app", "nobody")
    with pytest.raises(CommandError, match="no eval set"):
        call_command("evalset", "show", "s")
    assert not EvalSet.objects.exists()


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="root-pass-1"))
    return client


def test_the_admin_imports_an_upload_and_shows_the_bad_lines(superuser_client):
    url = reverse("admin:retrain_evalset_add")
    assert b"Import an eval set" in superuser_client.get(url).content
    bad = SimpleUploadedFile("bad.jsonl", b'{"prompt": "ok", "answer": 1}\n{"prompt": "<b>x</b>"}\nnope\n')
    page = superuser_client.post(url, {"name": "up", "file": bad}).content.decode()
    assert "line 2: missing key &#x27;answer&#x27;" in page and "line 3: not JSON" in page
    assert "nothing was imported" in page and not EvalSet.objects.exists()
    good = SimpleUploadedFile("good.jsonl", GSM8K.read_bytes())
    response = superuser_client.post(url, {"name": "up", "file": good}, follow=True)
    version = EvalSetVersion.objects.get()
    assert f"v1: {version.item_count} items" in response.content.decode()
    detail = superuser_client.get(reverse("admin:retrain_evalsetversion_change", args=[version.pk]))
    assert detail.status_code == 200 and b"Natalia sold clips" in detail.content
