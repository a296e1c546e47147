import threading
from pathlib import Path

import pytest
from django.conf import settings

from inference.engine import loading, workload
from inference.engine.batcher import BatcherConfig, DynamicBatcher
from inference.engine.generation import GenerationParams, LoadedModel, ModelSlot, generate_batch


@pytest.fixture(scope="module")
def tiny():
    return loading.load_model(Path(settings.BASE_MODEL))


@pytest.fixture
def slot(tiny):
    s = ModelSlot()
    s.swap(LoadedModel(version_id=1, model=tiny[0], tokenizer=tiny[1]))
    return s


def test_batched_greedy_equals_unbatched(tiny):
    model, tokenizer = tiny
    prompts = [p.prompt for p in workload.problems(24, seed=5, split="train")]
    alone = [generate_batch(model, tokenizer, [p], GenerationParams())[0].text for p in prompts]
    together = [g.text for g in generate_batch(model, tokenizer, prompts, GenerationParams())]
    assert together == alone


def test_each_sequence_keeps_its_own_budget(tiny):
    model, tokenizer = tiny
    prompts = [p.prompt for p in workload.problems(6, seed=6, split="train")]
    budgets = [3, 50, 7, 96, 1, 20]
    cut = generate_batch(model, tokenizer, prompts, GenerationParams(max_new_tokens=96), budgets=budgets)
    for prompt, budget, got in zip(prompts, budgets, cut):
        [alone] = generate_batch(model, tokenizer, [prompt], GenerationParams(max_new_tokens=budget))
        assert (got.text, got.completion_tokens) == (alone.text, alone.completion_tokens)
        assert got.completion_tokens <= budget


def test_concurrent_requests_are_grouped_by_complexity(slot):
    batcher = DynamicBatcher(
        slot,
        BatcherConfig(simple_max_batch=8, complex_max_batch=2, max_wait_ms=50, complex_max_new_tokens=64),
    )
    prompts = [p.prompt for p in workload.problems(20, seed=7, split="train")]
    results, errors = [], []

    def client(prompt, budget):
        try:
            results.append(
                (budget, batcher.generate(prompt, GenerationParams(max_new_tokens=budget), timeout=120))
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=(p, 96 if i % 4 == 0 else 48)) for i, p in enumerate(prompts)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.stop()
    assert not errors and len(results) == 20
    complex_sizes = [r.batch_size for budget, r in results if budget == 96]
    simple_sizes = [r.batch_size for budget, r in results if budget == 48]
    assert max(complex_sizes) <= 2 and max(simple_sizes) <= 8
    assert max(simple_sizes) > 1, "concurrent simple requests should share batches"
    assert all(r.version_id == 1 for _, r in results)


def test_a_swap_takes_effect_between_batches(slot, tiny):
    batcher = DynamicBatcher(slot, BatcherConfig(max_wait_ms=1))
    prompt = "Start with 12. Add 3. What is the result?"
    assert batcher.generate(prompt, GenerationParams(max_new_tokens=8)).version_id == 1
    slot.swap(LoadedModel(version_id=2, model=tiny[0], tokenizer=tiny[1]))
    assert batcher.generate(prompt, GenerationParams(max_new_tokens=8)).version_id == 2
    batcher.stop()


def test_untrained_head_predicts_strategies_and_reports_no_confidence(tiny):
    from inference.engine.metahead import MetaHead, MetaHeadConfig

    model, tokenizer = tiny
    head = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size))
    s = ModelSlot()
    s.swap(LoadedModel(version_id=3, model=model, tokenizer=tokenizer, head=head))
    batcher = DynamicBatcher(s, BatcherConfig(max_wait_ms=1))
    result = batcher.generate("What comes next: 3, 7, 11, 15?", GenerationParams())
    batcher.stop()
    from inference.engine.parser import parse_output

    steps = parse_output(result.generation.text).steps
    assert result.meta["confidence"] is None and result.meta["untrained"] is True
    assert len(result.meta["strategies"]) == len(steps) > 0
    assert set(result.meta["strategies"]) <= {"induction", "deduction", "analogy", "other"}


def test_a_head_that_fails_never_fails_the_answer(tiny):
    from inference.engine.metahead import MetaHead, MetaHeadConfig

    model, tokenizer = tiny
    broken = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size * 2))  # another model's width
    s = ModelSlot()
    s.swap(LoadedModel(version_id=4, model=model, tokenizer=tokenizer, head=broken))
    batcher = DynamicBatcher(s, BatcherConfig(max_wait_ms=1))
    result = batcher.generate("What comes next: 3, 7, 11, 15?", GenerationParams())
    batcher.stop()
    alone = generate_batch(model, tokenizer, ["What comes next: 3, 7, 11, 15?"], GenerationParams())[0]
    assert result.generation.text == alone.text and result.meta is None and result.version_id == 4


def test_model_work_off_the_callers_thread_returns_its_result_and_raises_its_error():
    from inference.engine.generation import run_on_own_thread

    caller = threading.get_ident()
    assert run_on_own_thread(threading.get_ident) != caller
    assert run_on_own_thread(lambda a, *, b: a + b, 2, b=3) == 5

    def refuse():
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        run_on_own_thread(refuse)


def test_the_batchers_thread_runs_with_its_configured_intra_op_threads(slot):
    import torch

    before = torch.get_num_threads()
    seen = []
    batcher = DynamicBatcher(
        slot,
        BatcherConfig(max_wait_ms=1, intra_op_threads=1),
        on_batch=lambda n, s: seen.append(torch.get_num_threads()),
    )
    try:
        batcher.generate("Start with 12. Add 3. What is the result?", GenerationParams(max_new_tokens=4))
    finally:
        batcher.stop()
        torch.set_num_threads(before)  # the setting is also the default of threads started later
    assert seen == [1]


def test_a_sample_group_generates_in_one_batch_and_is_never_split(slot):
    batcher = DynamicBatcher(slot, BatcherConfig(simple_max_batch=4, max_wait_ms=200))
    params = GenerationParams(max_new_tokens=16, temperature=0.6)
    try:
        group = batcher.submit_group("Start with 12. Add 3. What is the result?", params, 3)
        single = batcher.submit("Start with 20. Add 1. What is the result?", params)
        samples, alone = group.result(timeout=120), single.result(timeout=120)
        # larger than its class's batch: runs as a batch of its own, whole
        big = batcher.generate_group("What comes next: 3, 7, 11, 15?", params, 6, timeout=120)
    finally:
        batcher.stop()
    assert len(samples) == 3 and all(r.batch_size == 4 for r in samples) and alone.batch_size == 4
    assert len(big) == 6 and {r.batch_size for r in big} == {6}
    assert all(r.generation.completion_tokens > 0 and r.version_id == 1 for r in samples + big)


@pytest.mark.parametrize("temperature", [0.0, 0.6])
def test_generation_keeps_the_log_probability_the_model_gave_each_token(tiny, temperature):
    """The model's own distribution (before temperature and top-p): what one forward over prompt +
    completion gives, and the same with the states capture on."""
    import torch

    from inference.engine.chat import prompt_text
    from inference.engine.generation import generate_batch_with_states

    model, tokenizer = tiny
    prompts = ["Start with 40. Take away 7. What is the result?", "What comes next: 3, 7, 11, 15?"]
    params = GenerationParams(max_new_tokens=64, temperature=temperature)
    torch.manual_seed(3)
    generated = generate_batch(model, tokenizer, prompts, params, budgets=[64, 12])
    for prompt, g in zip(prompts, generated):
        prompt_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False).input_ids
        new = tokenizer(g.text, add_special_tokens=False).input_ids
        with torch.inference_mode():
            logits = model(torch.tensor([prompt_ids + new])).logits[0].float()
        expected = torch.log_softmax(logits, -1)[len(prompt_ids) - 1 : -1].gather(
            1, torch.tensor(new)[:, None]
        )
        assert len(g.token_logprobs) == g.completion_tokens == len(new)
        assert torch.allclose(torch.tensor(g.token_logprobs), expected[:, 0], atol=1e-4)
    assert generated[0].confidence is not None and 0 < generated[0].confidence <= 1
    assert generated[1].confidence is None  # cut off inside its reasoning: no answer to be sure of
    if temperature == 0:
        with_states, states = generate_batch_with_states(model, tokenizer, prompts, params, budgets=[64, 12])
        assert [g.token_logprobs for g in with_states] == [g.token_logprobs for g in generated]
        assert all(s is not None and len(s.token_ids) == len(s.states) for s in states)
