"""The head's pass over generated answers: one padded forward gives what one-at-a-time gives."""

import dataclasses
from pathlib import Path

import pytest
import torch

from inference.engine import loading, workload
from inference.engine.generation import GenerationParams
from inference.engine.meta_serving import annotate_batch, generate_and_read
from inference.engine.metahead import MetaHead, MetaHeadConfig

TINY = Path(__file__).resolve().parents[3] / "inference" / "engine" / "cogloop_tiny"


def assert_metas_close(got: list[dict | None], want: list[dict | None]) -> None:
    """Strategies and flags exactly; confidences within float32 rounding.

    Reading the head from generation's states and from a separate padded forward runs the same
    arithmetic in different batch shapes, and float32 sums then differ in the last bits by
    processor and kernel (seen: 0.41721407 vs 0.41721413). Exact equality would pass on some
    machines and fail on others.
    """
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if a is None or b is None:
            assert a is b
            continue
        assert a["strategies"] == b["strategies"] and a["untrained"] == b["untrained"]
        if b["confidence"] is None:
            assert a["confidence"] is None
        else:
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)


@pytest.fixture
def tiny():
    """A fresh copy per test: one test below changes its model instance."""
    return loading.load_model(TINY)


@pytest.fixture
def head(tiny):
    torch.manual_seed(0)
    return MetaHead(MetaHeadConfig.for_hidden(tiny[0].config.hidden_size, trained=True))


def test_batched_annotation_equals_one_at_a_time(tiny, head):
    model, tokenizer = tiny
    problems = workload.problems(6, seed=5, split="train")
    prompts = [p.prompt for p in problems]
    # answers of very different lengths, one of them without steps at all
    completions = [p.response_text() for p in problems[:5]] + ["</think>\n\nThe answer is 3."]
    batched = annotate_batch(model, tokenizer, head, prompts, completions)
    for prompt, completion, got in zip(prompts, completions, batched):
        alone = annotate_batch(model, tokenizer, head, [prompt], [completion])[0]
        assert got["strategies"] == alone["strategies"]
        assert abs(got["confidence"] - alone["confidence"]) < 1e-5
    assert batched[-1]["strategies"] == [] and batched[0]["strategies"]
    assert annotate_batch(model, tokenizer, head, [], []) == []


def test_reading_the_states_generation_computed_equals_a_second_forward(tiny, head):
    from inference.engine.generation import generate_batch, generate_batch_with_states
    from inference.engine.meta_serving import annotate_generations

    model, tokenizer = tiny
    prompts = [p.prompt for p in workload.problems(6, seed=7, split="train")]
    # rows stopped by EOS, by their own budget mid-batch, and by the batch's largest budget
    budgets = [96, 12, 96, 3, 40, 96]
    params = GenerationParams(max_new_tokens=96)
    generated, fed = generate_batch_with_states(model, tokenizer, prompts, params, budgets=budgets)
    assert [g.text for g in generated] == [
        g.text for g in generate_batch(model, tokenizer, prompts, params, budgets=budgets)
    ]
    assert {g.completion_tokens for g in generated} >= {12, 3}
    completions = [g.text for g in generated]
    # the states are those of the tokens fed, prompt then completion
    assert all(
        len(f.token_ids) == g.prompt_tokens + g.completion_tokens == f.states.shape[0]
        for f, g in zip(fed, generated)
    )
    second_pass = annotate_batch(model, tokenizer, head, prompts, completions)
    reused = annotate_generations(model, tokenizer, head, prompts, completions, fed)
    # a row without states, or whose tokens are not the ones its text encodes to, is read by a forward
    mismatched = dataclasses.replace(fed[1], token_ids=fed[1].token_ids[:-1])
    mixed = annotate_generations(model, tokenizer, head, prompts, completions, [None, mismatched, *fed[2:]])
    for got in (reused, mixed):
        for a, b in zip(got, second_pass):
            assert a["strategies"] == b["strategies"]
            assert abs(a["confidence"] - b["confidence"]) < 1e-4
    assert any(r["strategies"] for r in reused)


def test_states_stay_with_their_own_generation_when_two_threads_share_the_model(tiny):
    import threading

    from inference.engine.generation import generate_batch_with_states

    model, tokenizer = tiny
    params = GenerationParams(max_new_tokens=40)
    groups = [[p.prompt for p in workload.problems(4, seed=s, split="train")] for s in (11, 12)]
    alone = [generate_batch_with_states(model, tokenizer, g, params) for g in groups]
    side_by_side, errors = [None, None], []

    def work(i):
        try:
            for _ in range(3):
                side_by_side[i] = generate_batch_with_states(model, tokenizer, groups[i], params)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (gens, fed), (ref_gens, ref_fed) in zip(side_by_side, alone):
        assert [g.text for g in gens] == [g.text for g in ref_gens]
        for a, b in zip(fed, ref_fed):
            assert a.token_ids == b.token_ids and torch.allclose(a.states, b.states, atol=1e-4)


def test_a_model_without_a_decoder_module_gives_no_states_and_the_head_still_reads_it(tiny, head):
    from inference.engine.generation import generate_batch_with_states
    from inference.engine.meta_serving import annotate_generations

    model, tokenizer = tiny
    prompts = [p.prompt for p in workload.problems(2, seed=13, split="train")]
    model.get_decoder = lambda: model  # what transformers answers for a model it cannot split
    generated, fed = generate_batch_with_states(
        model, tokenizer, prompts, GenerationParams(max_new_tokens=40)
    )
    assert fed == [None, None]
    completions = [g.text for g in generated]
    assert_metas_close(
        annotate_generations(model, tokenizer, head, prompts, completions, fed),
        annotate_batch(model, tokenizer, head, prompts, completions),
    )


def test_generate_and_read_reads_with_the_head_and_keeps_answers_when_the_head_fails(tiny, head):
    model, tokenizer = tiny
    prompts = [p.prompt for p in workload.problems(3, seed=17, split="train")]
    params = GenerationParams(max_new_tokens=60)
    plain, none = generate_and_read(model, tokenizer, None, prompts, params)
    assert none == [None, None, None]
    read, metas = generate_and_read(model, tokenizer, head, prompts, params)
    assert [g.text for g in read] == [g.text for g in plain]
    assert_metas_close(metas, annotate_batch(model, tokenizer, head, prompts, [g.text for g in plain]))
    # a head of another model's width cannot read these states
    wrong = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size * 2, trained=True))
    with pytest.raises(ValueError, match="must be"):
        generate_and_read(model, tokenizer, wrong, prompts, params)
    kept, advisory = generate_and_read(model, tokenizer, wrong, prompts, params, advisory=True)
    assert [g.text for g in kept] == [g.text for g in plain] and advisory == [None, None, None]


def test_answers_made_elsewhere_are_read_by_one_prefill_as_the_full_forward_reads_them(tiny, head):
    from inference.engine.meta_serving import read_answers

    model, tokenizer = tiny
    problems = workload.problems(4, seed=17, split="train")
    prompts = [p.prompt for p in problems]
    completions = [p.response_text() for p in problems]
    read = read_answers(model, tokenizer, head, prompts, completions)
    # the decoder's own output is the last layer's normed states: what every layer's states end with
    get_decoder = model.get_decoder
    model.get_decoder = lambda: model
    try:
        all_layers = annotate_batch(model, tokenizer, head, prompts, completions)
    finally:
        model.get_decoder = get_decoder
    assert_metas_close(read, all_layers)
    assert all(r["confidence"] is not None and r["strategies"] for r in read)


def test_an_answer_longer_than_the_context_is_not_read(tiny, head):
    from inference.engine.meta_serving import read_answers

    model, tokenizer = tiny
    prompt = workload.problems(1, seed=3, split="train")[0].prompt
    short, long = "1 + 1 = 2\n</think>\n\nThe answer is 2.", "1 + 1 = 2\n" * 40 + "</think>\n\n2"
    limit = len(tokenizer(prompt + short)["input_ids"]) + 40
    got = read_answers(model, tokenizer, head, [prompt, prompt], [short, long], max_tokens=limit)
    assert got[0] is not None and got[1] is None
    assert_metas_close([got[0]], read_answers(model, tokenizer, head, [prompt], [short]))
