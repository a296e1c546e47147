import pytest

from cogloop.errors import ApplicationError
from retrain import gate, services
from retrain.embedded import register_embedded_eval_set
from retrain.models import DatasetVersion, TrainingRun


def test_dataset_build_without_new_samples_makes_no_version(db):
    with pytest.raises(ApplicationError, match="no new approved samples"):
        services.dataset_version_build(period="2026-11")
    assert DatasetVersion.objects.count() == 0


@pytest.fixture
def dataset(db):
    return DatasetVersion.objects.create(period="2026-10", sha256="0" * 64)


@pytest.mark.parametrize(
    "recipe, config, message",
    [
        ("bogus", {}, "unknown recipe"),
        ("lora-all", {"alpha": 1.5}, "alpha must lie in"),
        ("lora-all", {"gamma": -0.1}, "gamma must lie in"),
        ("lora-all", {"alpha": 0}, "alpha must be positive"),
        ("lora-all", {"nonsense": 1}, "unknown training option"),
    ],
)
def test_invalid_recipe_or_loss_weights_are_refused_before_a_run(dataset, recipe, config, message):
    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    with pytest.raises(ApplicationError, match=message):
        services.training_run_start(dataset=dataset, recipe=recipe, period="2026-Q4", config=config)
    assert TrainingRun.objects.count() == 0


def test_second_run_in_a_quarter_is_refused_naming_the_first(dataset, django_capture_on_commit_callbacks):
    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    first = services.training_run_start(dataset=dataset, period="2026-Q4")  # on_commit never fires here
    with pytest.raises(ApplicationError, match=f"training run {first.pk}"):
        services.training_run_start(dataset=dataset, period="2026-Q4")


def test_gate_refuses_a_slice_regression_even_with_overall_gain():
    serving = {
        "overall": {"accuracy": 0.60},
        "slices": {"a": {"accuracy": 0.0, "n": 50}, "b": {"accuracy": 0.90, "n": 50}},
    }
    candidate = {
        "overall": {"accuracy": 0.80},
        "slices": {"a": {"accuracy": 0.90, "n": 50}, "b": {"accuracy": 0.70, "n": 50}},
    }
    decision = gate.gate_decide(serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.05)
    assert not decision["promote"] and "b" in decision["reason"]
    decision = gate.gate_decide(serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.25)
    assert decision["promote"]
    flat = gate.gate_decide(serving=serving, candidate=serving, min_gain=0.02, tolerance=0.05)
    assert not flat["promote"] and "below the required" in flat["reason"]


def test_gate_lists_slices_too_small_to_judge_instead_of_judging_them():
    serving = {
        "overall": {"accuracy": 0.60},
        "slices": {"big": {"accuracy": 0.5, "n": 200}, "tiny": {"accuracy": 1.0, "n": 4}},
    }
    candidate = {
        "overall": {"accuracy": 0.80},
        "slices": {"big": {"accuracy": 0.8, "n": 200}, "tiny": {"accuracy": 0.5, "n": 4}},
    }
    decision = gate.gate_decide(
        serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.05, min_slice_n=30
    )
    assert decision["promote"]
    assert decision["unjudged_slices"] == ["tiny"] and decision["slice_changes"] == {"big": 0.3, "tiny": -0.5}
    strict = gate.gate_decide(
        serving=serving, candidate=candidate, min_gain=0.02, tolerance=0.05, min_slice_n=1
    )
    assert not strict["promote"] and "tiny" in strict["reason"]


def test_retrain_command_refuses_bad_options_with_the_reason_and_starts_nothing(dataset):
    from django.core.management import CommandError, call_command

    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    with pytest.raises(CommandError, match="beta must lie in"):
        call_command("retrain", "train", "--set", "beta=2", "--period", "2026-Q4")
    with pytest.raises(CommandError, match="curriculum_end must be >= curriculum_start"):
        call_command("retrain", "train", "--set", "curriculum_start=0.9", "--set", "curriculum_end=0.1")
    with pytest.raises(CommandError, match="key=value"):
        call_command("retrain", "train", "--set", "epochs")
    assert TrainingRun.objects.count() == 0
    with pytest.raises(CommandError, match="dataset version 2026-10 exists"):
        call_command("retrain", "dataset", "--period", "2026-10")


def _rows(flags, kind="analogy"):
    return [{"slice": "rest", "kind": kind, "correct": bool(f), "score": 0.8} for f in flags]


def test_gate_judges_a_slice_loss_only_when_it_is_not_noise(settings):
    from retrain.trainer.evaluate import summarize

    settings.COGLOOP = {
        **settings.COGLOOP,
        "GATE_MIN_GAIN": 0.02,
        "GATE_SLICE_TOLERANCE": 0.05,
        "GATE_MIN_SLICE_N": 30,
    }
    # the candidate fixes 60 chains; the question is what it did to 40 analogies
    serving = _rows([0] * 60 + [1] * 40, kind="chain") + _rows([1] * 40)

    def gate(analogies):
        candidate = _rows([1] * 100, kind="chain") + _rows(analogies)
        return services.gate_from_rows(
            serving, candidate, serving=summarize(serving), candidate=summarize(candidate), error_classes={}
        )

    noisy = gate([1] * 37 + [0] * 3)  # -7.5 %, but a resample often holds none of the three
    assert noisy["slice_changes"]["strategy:analogy"] == -0.075
    assert noisy["slice_ci95"]["strategy:analogy"][1] == 0
    assert noisy["promote"], noisy["reason"]
    real = gate([1] * 32 + [0] * 8)  # -20 %, and every resample shows it
    assert real["slice_ci95"]["strategy:analogy"][1] < 0
    assert not real["promote"] and "strategy:analogy" in real["reason"]
