"""The trainer without Django: loss terms move the model the way their docs say, the
curriculum raises the reflection share, an interrupted fine-tune resumes, the head is saved,
validation holds prompts out and decides when attempts stop and which weights are kept."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inference.engine import loading, workload
from inference.engine.chat import encode_pair
from inference.engine.metahead import MetaHead, MetaHeadConfig, load_head
from retrain.trainer.config import TrainConfig
from retrain.trainer.data import CurriculumSampler, PairCollator, PairDataset
from retrain.trainer.head_fit import fit_head
from retrain.trainer.losses import mean_token_logprob, odds_ratio_loss
from retrain.trainer.train import finetune
from retrain.trainer.trainer import meta_rows_loss

TINY = Path(__file__).resolve().parents[3] / "inference" / "engine" / "cogloop_tiny"


def _samples(n=24, seed=3):
    rows = []
    for p in workload.problems(n, seed=seed, split="train"):
        row = {"prompt": p.prompt, "chosen": p.response_text()}
        if p.slice == workload.BLIND_SPOT:
            row.update(
                rejected=p.response_text().replace(" - ", " + "), confidence=0.95, rejected_confidence=0.0
            )
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def tiny():
    return loading.load_model(TINY)


def _batch(tokenizer, samples):
    return PairCollator(tokenizer.pad_token_id)(PairDataset(tokenizer, samples, 256).rows)


def _sgd_step(params, loss, lr):
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * g


def test_ce_step_raises_the_corrected_responses_probability(tiny):
    model, tokenizer = tiny
    model = type(model).from_pretrained(TINY)  # a copy this test may change
    batch = _batch(tokenizer, _samples(8))
    params = [p for p in model.parameters()]

    def logp():
        return mean_token_logprob(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["labels"],
        ).mean()

    before = logp().item()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    _sgd_step(params, out.loss, lr=0.05)
    assert logp().item() > before


def test_consistency_step_lowers_the_original_relative_to_the_correction(tiny):
    _, tokenizer = tiny
    model = loading.load_model(TINY)[0]
    batch = _batch(tokenizer, [s for s in _samples(40) if "rejected" in s][:4])
    params = [p for p in model.parameters()]

    def margin():
        index = batch["pair_index"]
        chosen = mean_token_logprob(
            model(input_ids=batch["input_ids"][index], attention_mask=batch["attention_mask"][index]).logits,
            batch["labels"][index],
        )
        rejected = mean_token_logprob(
            model(
                input_ids=batch["pair_rejected_input_ids"],
                attention_mask=batch["pair_rejected_attention_mask"],
            ).logits,
            batch["pair_rejected_labels"],
        )
        return chosen, rejected

    c0, r0 = margin()
    _sgd_step(params, odds_ratio_loss(c0, r0), lr=0.05)
    c1, r1 = margin()
    assert (c1 - r1).mean().item() > (c0 - r0).mean().item()


def test_meta_step_raises_labelled_strategies_and_moves_confidence_to_its_target(tiny):
    model, tokenizer = tiny
    samples = [s for s in _samples(40) if "rejected" in s][:4]
    batch = _batch(tokenizer, samples)
    assert all(batch["meta"]), "every corrected response's steps were placed"
    torch.manual_seed(0)
    head = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size))
    with torch.no_grad():
        hidden = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        ).hidden_states[-1]

    def readings():
        probs, confs = [], []
        for b, m in enumerate(batch["meta"]):
            p = head.strategy_logits(hidden[b, m["positions"]]).softmax(-1)
            probs.append(p[range(len(m["strategies"])), m["strategies"]].mean())
            confs.append(torch.sigmoid(head.confidence_logit(hidden[b, m["answer"]])))
        return torch.stack(probs).mean().item(), torch.stack(confs).mean().item()

    p0, c0 = readings()
    loss = torch.stack(meta_rows_loss(head, hidden, batch["meta"])).mean()
    _sgd_step(list(head.parameters()), loss, lr=0.5)
    p1, c1 = readings()
    assert p1 > p0
    assert abs(c1 - 0.95) < abs(c0 - 0.95)  # the corrected responses' target: the reviewer's 0.9-1.0


def test_curriculum_raises_the_reflection_share_at_constant_epoch_length():
    kinds = ["reflection"] * 10 + ["replay"] * 30
    sampler = CurriculumSampler(kinds, start=0.2, end=0.8, epochs=4, seed=1)
    shares = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        picked = list(sampler)
        assert len(picked) == len(kinds)
        shares.append(sum(kinds[i] == "reflection" for i in picked) / len(picked))
    assert shares == sorted(shares) and shares[0] == pytest.approx(0.2) and shares[-1] == pytest.approx(0.8)
    sampler.set_epoch(0)
    assert list(sampler) == list(sampler), "an epoch's order is reproducible (resume depends on it)"


def test_curriculum_without_replay_is_a_plain_shuffle():
    sampler = CurriculumSampler(["reflection"] * 5, start=0.3, end=0.7, epochs=3, seed=1)
    assert sorted(sampler) == list(range(5))


class Interrupt(Exception):
    pass


def test_interrupted_finetune_resumes_from_its_checkpoint_and_ends_where_a_whole_run_ends(tmp_path):
    samples = _samples(24)
    config = TrainConfig(epochs=3, batch_size=8, seed=5)
    whole = finetune(
        base_dir=TINY, samples=samples, out_dir=tmp_path / "whole", work_dir=tmp_path / "w1", config=config
    )

    def stop_in_epoch_two(progress):
        if progress["step"] == whole["steps"] // 3 + 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        finetune(
            base_dir=TINY,
            samples=samples,
            out_dir=tmp_path / "resumed",
            work_dir=tmp_path / "w2",
            config=config,
            on_progress=stop_in_epoch_two,
        )
    assert whole["validation"]["skipped"], "too few corrections to hold any out: one attempt of 3 epochs"
    assert [p.name for p in (tmp_path / "w2" / "attempt-0").iterdir()] == [
        f"checkpoint-{whole['steps'] // 3}"
    ]
    resumed = finetune(
        base_dir=TINY, samples=samples, out_dir=tmp_path / "resumed", work_dir=tmp_path / "w2", config=config
    )
    assert resumed["resumed_from"] == f"attempt-0/checkpoint-{whole['steps'] // 3}"
    assert resumed["steps"] == whole["steps"]
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_finetune_saves_a_trained_head_that_gives_confidences(tmp_path):
    summary = finetune(
        base_dir=TINY,
        samples=_samples(16),
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "w",
        config=TrainConfig(epochs=1, batch_size=8),
    )
    assert summary["meta_loss"] == "trained" and summary["meta_rows"] == 16
    assert {"loss", "ce", "meta"} <= set(summary["loss_history"][-1])
    head = load_head(tmp_path / "out")
    assert head is not None and head.config.trained
    loading.check_safe(tmp_path / "out")


def test_beta_zero_trains_no_head(tmp_path):
    summary = finetune(
        base_dir=TINY,
        samples=_samples(8),
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "w",
        config=TrainConfig(epochs=1, batch_size=8, beta=0.0),
    )
    assert summary["meta_loss"].startswith("absent")
    assert load_head(tmp_path / "out") is None


def test_encode_pair_matches_the_offsets_the_head_positions_use(tiny):
    _, tokenizer = tiny
    for s in _samples(12):
        p, c = encode_pair(tokenizer, s["prompt"], s["chosen"])
        row = PairDataset(tokenizer, [s], 256).rows[0]
        assert row["meta"]["answer"] == len(p) + len(c) - 2  # the last token before EOS


def test_a_pairs_chosen_side_read_from_the_padded_main_batch_equals_its_own_forward(tiny):
    model, tokenizer = tiny
    samples = _samples(40)
    batch = _batch(tokenizer, samples[:8] + [s for s in samples if "rejected" in s][:2])
    index = batch["pair_index"]
    with torch.no_grad():
        from_batch = mean_token_logprob(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[index],
            batch["labels"][index],
        )
        for k, i in enumerate(index.tolist()):
            n = int(batch["attention_mask"][i].sum())
            alone = mean_token_logprob(
                model(input_ids=batch["input_ids"][i : i + 1, :n]).logits, batch["labels"][i : i + 1, :n]
            )
            torch.testing.assert_close(from_batch[k], alone[0], rtol=1e-5, atol=1e-5)


def test_head_fit_pools_exactly_as_the_served_head_does():
    torch.manual_seed(0)
    head = MetaHead(MetaHeadConfig.for_hidden(32))
    answers, steps = torch.randn(3, 32), [torch.randn(2, 32), torch.randn(4, 32), torch.randn(1, 32)]
    inputs = {
        "answers": answers,
        "steps": torch.cat(steps),
        "owner": torch.tensor([0, 0, 1, 1, 1, 1, 2]),
        "strategies": torch.tensor([0, 1, 1, 1, 2, 3, 0]),
        "targets": [1.0, 0.0, None],
    }
    fit = fit_head(head, inputs, steps=50, lr=1e-2)
    assert fit["loss_after"] < fit["loss_before"]
    served = [torch.sigmoid(head.confidence_logit(a, s)).item() for a, s in zip(answers, steps)]
    assert served[0] > 0.5 > served[1]  # the targets it was fitted to, read the way serving reads them


def _never_fixed(monkeypatch):
    """Validation that never calls an error group fixed: every attempt runs out its epochs."""
    from retrain.trainer import validation

    real = validation.verdict

    def verdict(entry, baseline, config):
        return {**real(entry, baseline, config), "fixed": False}

    monkeypatch.setattr(validation, "verdict", verdict)


VALIDATED = dict(
    batch_size=8, max_epochs=2, min_epochs=1, max_attempts=2, validation_min=3, head_fit_steps=10, seed=5
)


def test_validated_finetune_reports_every_attempt_and_keeps_a_best_epoch(tmp_path, monkeypatch):
    _never_fixed(monkeypatch)
    summary = finetune(
        base_dir=TINY,
        samples=_samples(40),
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "w",
        config=TrainConfig(**VALIDATED),
    )
    checks = summary["validation"]["checks"]
    assert checks["arithmetic/deduction"] >= 3 and checks["replay"] >= 3
    assert summary["samples"] == 40 - sum(checks.values()), "held-out prompts are not trained on"
    attempts = summary["attempts"]
    assert [a["attempt"] for a in attempts] == [0, 1] and [a["seed"] for a in attempts] == [5, 6]
    for a in attempts:
        assert [e["epoch"] for e in a["validation"]] == [0, 1, 2]
        assert a["stop"] == "max_epochs" and not a["converged"]
        best = max(a["validation"][1:], key=lambda e: (e["replay_ok"], e["corrections"]["accuracy"]))
        assert a["best"]["corrections"] == best["corrections"]
    assert summary["chosen_because"].startswith("no attempt converged")
    assert (tmp_path / "w" / attempts[summary["chosen_attempt"]]["weights"]).exists()
    assert not list((tmp_path / "w").glob("attempt-*/checkpoint-*")), "finished attempts keep only their best"


def test_a_run_killed_in_its_second_attempt_resumes_it_and_ends_where_a_whole_run_ends(tmp_path, monkeypatch):
    _never_fixed(monkeypatch)
    samples, config = _samples(40), TrainConfig(**VALIDATED)
    whole = finetune(
        base_dir=TINY, samples=samples, out_dir=tmp_path / "whole", work_dir=tmp_path / "w1", config=config
    )
    per_epoch = whole["attempts"][1]["steps"] // 2

    def stop_in_second_epoch_of_attempt_two(progress):
        if progress["attempt"] == 1 and progress["step"] == whole["attempts"][0]["steps"] + per_epoch + 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        finetune(
            base_dir=TINY,
            samples=samples,
            out_dir=tmp_path / "resumed",
            work_dir=tmp_path / "w2",
            config=config,
            on_progress=stop_in_second_epoch_of_attempt_two,
        )
    assert [p.name for p in (tmp_path / "w2" / "attempt-1").glob("checkpoint-*")] == [
        f"checkpoint-{per_epoch}"
    ]
    resumed = finetune(
        base_dir=TINY, samples=samples, out_dir=tmp_path / "resumed", work_dir=tmp_path / "w2", config=config
    )
    assert resumed["resumed_from"] == f"attempt-1/checkpoint-{per_epoch}"
    assert resumed["attempts"][0]["resumed_from"] is None, "the finished attempt was not trained again"
    for a, b in zip(whole["attempts"], resumed["attempts"]):
        assert [e["corrections"] for e in a["validation"]] == [e["corrections"] for e in b["validation"]]
        assert a["best_epoch"] == b["best_epoch"]
    assert whole["chosen_attempt"] == resumed["chosen_attempt"]
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
