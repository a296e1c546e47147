"""Loading model directories safely, and their sha256 manifests.

A model directory is a Hugging Face causal-LM directory in safetensors. Loading refuses
pickle checkpoints and custom code, and can be asked to verify a manifest first so that a
tampered or half-copied artifact never reaches a model slot.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
MANIFEST_NAME = "manifest.json"


class ArtifactError(Exception):
    """A model directory that must not be loaded (tampered, unsafe, incomplete)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(model_dir: Path) -> dict[str, str]:
    """sha256 of every file in the directory (recursively), the manifest itself excluded."""
    model_dir = Path(model_dir)
    return {
        str(p.relative_to(model_dir)): sha256_file(p)
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def write_manifest(model_dir: Path) -> dict[str, str]:
    manifest = build_manifest(model_dir)
    (Path(model_dir) / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def manifest_digest(manifest: dict[str, str]) -> str:
    """One sha256 naming the whole artifact: the hash of its sorted manifest."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def verify_manifest(model_dir: Path, expected: dict[str, str]) -> None:
    """Raise ArtifactError unless the directory holds exactly the expected files and bytes."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ArtifactError(f"model directory {model_dir} does not exist")
    actual = build_manifest(model_dir)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    if missing or extra or changed:
        raise ArtifactError(
            f"manifest mismatch in {model_dir}: missing={missing} extra={extra} changed={changed}"
        )


def check_safe(model_dir: Path) -> None:
    """Refuse pickle checkpoints and directories that need custom code."""
    model_dir = Path(model_dir)
    pickles = [p.name for p in model_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise ArtifactError(f"pickle checkpoints are refused: {pickles}")
    if not list(model_dir.glob("*.safetensors")):
        raise ArtifactError(f"no safetensors weights in {model_dir}")
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise ArtifactError(f"no config.json in {model_dir}")
    config = json.loads(config_path.read_text())
    if config.get("auto_map"):
        raise ArtifactError("models that need trust_remote_code are refused (config has auto_map)")
    for py in model_dir.glob("*.py"):
        raise ArtifactError(f"models that ship code are refused ({py.name})")


def resolve_placement(device: str | None = None, dtype: str | None = None):
    """(torch.device, torch.dtype) to serve on: ``device`` "cpu" (default), "cuda" or "cuda:N";
    ``dtype`` "float32", "bfloat16", "float16" or "auto" (default: float32 on a CPU, bfloat16
    on a GPU, where decoding is bound by reading the weights). Raises ValueError naming what
    is wrong, before anything is loaded."""
    import torch

    name = (device or "cpu").strip().lower()
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        where = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
        if where.index is not None and where.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
    kind = (dtype or "auto").strip().lower()
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if kind == "auto":
        return where, torch.float32 if where.type == "cpu" else torch.bfloat16
    if kind not in dtypes:
        raise ValueError(f"dtype must be one of auto, {', '.join(dtypes)}; got {dtype!r}")
    return where, dtypes[kind]


def load_model(
    model_dir: Path,
    *,
    expected_manifest: dict[str, str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
):
    """(model, tokenizer) from a directory, after the safety and manifest checks, placed on
    ``device`` in ``dtype`` (see `resolve_placement`; default: the CPU in float32)."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    where, weights_dtype = resolve_placement(device, dtype)
    model_dir = Path(model_dir)
    if expected_manifest is not None:
        verify_manifest(model_dir, expected_manifest)
    check_safe(model_dir)
    # The artifact's tokenizer.json exactly as shipped: AutoTokenizer would rebuild a Qwen2
    # tokenizer from the model type and silently change the pre-tokenizer.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        trust_remote_code=False,
        use_safetensors=True,
        local_files_only=True,
        dtype=weights_dtype,
        device_map=None if where.type == "cpu" else {"": where},
    )
    model.eval()
    return model, tokenizer
