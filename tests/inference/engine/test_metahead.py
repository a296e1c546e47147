from pathlib import Path

import pytest
import torch

from inference.engine.metahead import (
    IGNORE_STRATEGY,
    STRATEGIES,
    HeadArtifactError,
    MetaHead,
    MetaHeadConfig,
    count_parameters,
    load_head,
    meta_loss,
    predict,
    predict_batch,
    save_head,
    step_end_positions,
)

TINY_DIR = Path(__file__).resolve().parents[3] / "inference" / "engine" / "cogloop_tiny"


def make_head(hidden=32, trained=False, seed=0):
    torch.manual_seed(seed)
    return MetaHead(MetaHeadConfig.for_hidden(hidden, trained=trained))


def states(n_steps=3, hidden=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_steps, hidden, generator=g), torch.randn(hidden, generator=g)


def assert_float32(head):
    assert {p.dtype for p in head.parameters()} == {torch.float32}


def test_head_is_about_two_million_parameters_at_production_size():
    big = count_parameters(MetaHead(MetaHeadConfig.for_hidden(1536)))
    tiny = count_parameters(MetaHead(MetaHeadConfig.for_hidden(128)))
    assert 1_500_000 <= big <= 2_500_000
    assert big == 2_016_929  # the figure stated in MetaHeadConfig.for_hidden
    assert tiny == 14_867
    assert tiny * 50 < big


def test_forward_shapes():
    head = make_head()
    step_states, answer_state = states(n_steps=5)
    out = head(step_states, answer_state)
    assert out["strategy_logits"].shape == (5, len(STRATEGIES))
    assert out["confidence_logit"].shape == ()


def test_forward_rejects_wrong_hidden_size():
    head = make_head(hidden=32)
    with pytest.raises(ValueError):
        head(torch.randn(2, 16), torch.randn(32))


def test_bf16_inputs_give_float32_outputs():
    head = make_head()
    step_states, answer_state = states()
    out = head(step_states.bfloat16(), answer_state.bfloat16())
    assert out["strategy_logits"].dtype == torch.float32
    assert out["confidence_logit"].dtype == torch.float32


def test_head_refuses_to_be_cast_down_also_inside_a_bf16_model():
    head = make_head()
    head.to(torch.bfloat16)
    assert_float32(head)
    head.half()
    assert_float32(head)

    # the head attached to a base model that is then cast to bf16, as a trainer or server does
    model = torch.nn.ModuleDict({"base": torch.nn.Linear(32, 32), "meta_head": make_head()})
    model.to(torch.bfloat16)
    assert model["base"].weight.dtype == torch.bfloat16
    assert_float32(model["meta_head"])
    out = model["meta_head"](*[t.bfloat16() for t in states()])
    assert out["strategy_logits"].dtype == torch.float32


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    head = make_head(trained=True)
    assert save_head(head, tmp_path) == tmp_path / "cogloop"
    assert (tmp_path / "cogloop" / "meta_head.safetensors").exists()
    assert (tmp_path / "cogloop" / "meta_head.json").exists()
    # a loader that takes every top-level *.safetensors as the model's weights (vLLM) sees none
    assert not list(tmp_path.glob("*.safetensors"))

    loaded = load_head(tmp_path)
    assert loaded is not None
    assert loaded.config == head.config
    assert loaded.config.trained is True
    assert_float32(loaded)
    step_states, answer_state = states()
    head.eval()
    loaded.eval()
    a, b = head(step_states, answer_state), loaded(step_states, answer_state)
    assert torch.equal(a["strategy_logits"], b["strategy_logits"])
    assert torch.equal(a["confidence_logit"], b["confidence_logit"])


def test_a_head_saved_beside_the_weights_before_the_move_still_loads(tmp_path):
    head = make_head(trained=True)
    save_head(head, tmp_path / "new")
    for name in ("meta_head.safetensors", "meta_head.json"):  # where older versions hold it
        (tmp_path / "new" / "cogloop" / name).rename(tmp_path / name)
    loaded = load_head(tmp_path)
    assert loaded is not None and loaded.config == head.config
    for key, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_load_of_a_directory_without_a_head_returns_none(tmp_path):
    assert load_head(tmp_path / "missing") is None
    assert load_head(tmp_path) is None


def test_pickled_head_is_refused(tmp_path):
    head = make_head()
    torch.save(head.state_dict(), tmp_path / "meta_head.bin")
    (tmp_path / "meta_head.json").write_text('{"hidden_size": 32, "inner_size": 27}')
    with pytest.raises(ValueError, match="safetensors"):
        load_head(tmp_path)


def test_pickle_beside_safetensors_is_refused(tmp_path):
    head = make_head()
    save_head(head, tmp_path)
    torch.save(head.state_dict(), tmp_path / "cogloop" / "meta_head.pt")
    with pytest.raises(HeadArtifactError):
        load_head(tmp_path)


def test_pickle_at_the_old_place_is_refused_beside_a_head_at_the_new(tmp_path):
    head = make_head()
    save_head(head, tmp_path)
    torch.save(head.state_dict(), tmp_path / "meta_head.bin")
    with pytest.raises(HeadArtifactError):
        load_head(tmp_path)


def test_head_with_weights_but_no_config_is_refused(tmp_path):
    save_head(make_head(), tmp_path)
    (tmp_path / "cogloop" / "meta_head.json").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        load_head(tmp_path)


def test_untrained_head_reports_no_confidence():
    result = predict(make_head(trained=False), *states(n_steps=2))
    assert result["confidence"] is None
    assert result["untrained"] is True
    assert len(result["strategies"]) == 2
    assert set(result["strategies"]) <= set(STRATEGIES)
    for row in result["strategy_probs"]:
        assert len(row) == len(STRATEGIES)
        assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_trained_head_reports_a_probability():
    result = predict(make_head(trained=True), *states(n_steps=2))
    assert isinstance(result["confidence"], float)
    assert 0.0 <= result["confidence"] <= 1.0
    assert result["untrained"] is False


def test_predict_with_no_steps():
    head = make_head(trained=True)
    result = predict(head, torch.zeros(0, 32), torch.randn(32))
    assert result["strategies"] == []
    assert result["strategy_probs"] == []
    assert result["confidence"] is not None


def test_meta_loss_falls_with_training_on_a_fixed_batch():
    head = make_head()
    step_states, answer_state = states(n_steps=4)
    targets = torch.tensor([0, 1, 2, 1])
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    first = meta_loss(head(step_states, answer_state), targets, torch.tensor(1.0)).item()
    for _ in range(10):
        optimizer.zero_grad()
        loss = meta_loss(head(step_states, answer_state), targets, torch.tensor(1.0))
        loss.backward()
        optimizer.step()
    last = meta_loss(head(step_states, answer_state), targets, torch.tensor(1.0)).item()
    assert last < first
    result = predict(head, step_states, answer_state)
    assert result["strategies"] == ["induction", "deduction", "analogy", "deduction"]


def test_right_answer_pushes_confidence_up():
    strategy_logits = torch.zeros(2, len(STRATEGIES), requires_grad=True)
    confidence_logit = torch.tensor(0.3, requires_grad=True)
    out = {"strategy_logits": strategy_logits, "confidence_logit": confidence_logit}
    meta_loss(out, torch.tensor([1, 3]), torch.tensor(1.0)).backward()
    assert confidence_logit.grad < 0

    confidence_logit.grad = None
    meta_loss(out, torch.tensor([1, 3]), torch.tensor(0.0)).backward()
    assert confidence_logit.grad > 0


def test_meta_loss_is_the_sum_of_both_terms_and_ignores_unlabelled_steps():
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    out = {"strategy_logits": logits, "confidence_logit": torch.tensor(0.0)}
    loss = meta_loss(out, torch.tensor([0, IGNORE_STRATEGY]), 1.0)
    expected_ce = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    assert loss.item() == pytest.approx(expected_ce.item() + torch.log(torch.tensor(2.0)).item(), abs=1e-6)

    only_confidence = meta_loss(out, torch.tensor([IGNORE_STRATEGY, IGNORE_STRATEGY]), 1.0)
    assert only_confidence.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)


def test_step_end_positions_on_hand_made_offsets():
    text = "Step 1: 2 + 2 = 4\nStep 2: 4 * 3 = 12\n"
    # BOS (0, 0), then tokens; the newline after step 1 is merged with nothing.
    offsets = [
        (0, 0),  # 0 BOS
        (0, 4),  # 1 "Step"
        (4, 7),  # 2 " 1:"
        (7, 17),  # 3 " 2 + 2 = 4"
        (17, 18),  # 4 "\n"
        (18, 22),  # 5 "Step"
        (22, 25),  # 6 " 2:"
        (25, 31),  # 7 " 4 * 3"
        (31, 37),  # 8 " = 12\n" spans past step 2's end (36)
        (0, 0),  # 9 EOS, must not count as a step end
    ]
    step_ends = [17, 36]
    assert text[:17].endswith("= 4")
    assert step_end_positions(offsets, text, step_ends) == [3, 7]
    assert step_end_positions(offsets, text, [18, 37]) == [4, 8]


def test_step_end_positions_edge_cases():
    assert step_end_positions([], "", []) == []
    assert step_end_positions([(0, 3)], "abc", []) == []
    with pytest.raises(ValueError):
        step_end_positions([], "abc", [2])
    with pytest.raises(ValueError):
        step_end_positions([(0, 3)], "abc", [10])
    # a step ending before the first token finishes still gets a position
    assert step_end_positions([(0, 0), (0, 3)], "abc", [1]) == [1]


def test_step_end_positions_with_the_shipped_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(TINY_DIR / "tokenizer.json"))
    text = "Step 1 [deduction]: 37 + 5 = 42\nStep 2 [deduction]: 42 - 8 = 34\n"
    step_ends = [text.index("\n"), len(text) - 1]
    encoding = tokenizer.encode(text)
    positions = step_end_positions(encoding.offsets, text, step_ends)
    assert len(positions) == 2
    for pos, end in zip(positions, step_ends, strict=True):
        assert encoding.offsets[pos][1] <= end
        assert text[: encoding.offsets[pos][1]].rstrip().endswith(("42", "34"))


def test_predict_batch_gives_each_answer_what_the_head_gives_it_alone():
    head = make_head(trained=True)
    answers = [states(n_steps=n, seed=n) for n in (3, 0, 5, 1)]
    together = predict_batch(head, [s for s, _ in answers], torch.stack([a for _, a in answers]))
    for (step_states, answer_state), got in zip(answers, together):
        alone = head(step_states, answer_state)
        assert got["confidence"] == pytest.approx(torch.sigmoid(alone["confidence_logit"]).item(), abs=1e-6)
        assert torch.allclose(
            torch.tensor(got["strategy_probs"]).reshape(-1, len(STRATEGIES)),
            alone["strategy_logits"].softmax(-1),
            atol=1e-6,
        )
        assert len(got["strategies"]) == step_states.shape[0]
    assert predict_batch(head, [], torch.zeros(0, 32)) == []
    with pytest.raises(ValueError, match="answer_states"):
        predict_batch(head, [answers[0][0]], torch.zeros(2, 32))
