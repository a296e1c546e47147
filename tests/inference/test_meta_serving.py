"""The head's pass over generated answers: one padded forward gives what one-at-a-time gives."""

from pathlib import Path

import torch

from inference.engine import loading, workload
from inference.engine.meta_serving import annotate_batch
from inference.engine.metahead import MetaHead, MetaHeadConfig

TINY = Path(__file__).resolve().parents[2] / "inference" / "engine" / "cogloop_tiny"


def test_batched_annotation_equals_one_at_a_time():
    model, tokenizer = loading.load_model(TINY)
    torch.manual_seed(0)
    head = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size, trained=True))
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
