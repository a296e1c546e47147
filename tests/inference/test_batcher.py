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
