"""Where serving places the model: device and dtype settings, checked before anything loads."""

from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.core import checks

from inference.checks import serving_placement
from inference.engine import loading
from inference.engine.generation import GenerationParams, generate_batch

TINY = Path(settings.BASE_MODEL)


def test_auto_dtype_is_float32_on_the_cpu():
    assert loading.resolve_placement(None, None) == (torch.device("cpu"), torch.float32)
    assert loading.resolve_placement("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)


@pytest.mark.parametrize(
    "device, dtype, message",
    [
        ("gpu", "auto", "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ("cuda:x", "auto", "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ("cpu", "int4", "dtype must be one of auto, float32, bfloat16, float16"),
    ],
)
def test_bad_placement_names_the_setting(device, dtype, message):
    with pytest.raises(ValueError, match=message):
        loading.resolve_placement(device, dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_before_loading():
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        loading.load_model(TINY, device="cuda")


def test_system_check_reports_a_bad_serving_device(settings):
    assert serving_placement() == []
    settings.COGLOOP = {**settings.COGLOOP, "SERVE_DEVICE": "tpu"}
    errors = serving_placement()
    assert [e.id for e in errors] == ["inference.E001"]
    assert errors[0].level == checks.ERROR and "tpu" in errors[0].msg


def test_weights_load_in_the_asked_dtype_and_still_generate():
    model, tokenizer = loading.load_model(TINY, dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = generate_batch(
        model, tokenizer, ["Start with 12. Add 3. What is the result?"], GenerationParams(max_new_tokens=8)
    )
    assert out[0].completion_tokens > 0
