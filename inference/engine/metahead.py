"""The metacognition head: per-step strategy and answer confidence from the base model's hidden states.

The head reads the base model's last-layer hidden states at the token where each reasoning step
ends (`step_end_positions` finds those tokens) and at the answer, and predicts

- each step's strategy, one of `STRATEGIES` (induction / deduction / analogy / other), and
- a confidence that the answer is right (a logit, read through a sigmoid).

Shape: a shared trunk ``LayerNorm -> Linear(hidden, inner) -> GELU`` feeds a strategy classifier
``Linear(inner, n_strategies)`` and a confidence output ``Linear(inner, 1)``. The same trunk serves
step states and the answer state, so the strategy signal the trunk learns is available to the
confidence output.

The head is always float32. A base model served in bf16 or int8 hands it bf16 activations; the head
casts them up, and its own weights refuse to be cast down: `MetaHead._apply` (the hook behind
``.to()``, ``.half()``, ``.bfloat16()``, also when they are called on a parent model that holds the
head) moves the head between devices but keeps floating tensors in float32. A head of 2M
parameters costs nothing to keep at full precision, while bf16 rounding of its small logits would
make confidences jumpy from one request to the next.

Artifacts: `save_head` writes ``meta_head.safetensors`` and ``meta_head.json`` (the config,
including `trained`) in a ``cogloop/`` folder of the model directory, not beside the weights: a
loader that takes every top-level ``*.safetensors`` of a Hugging Face directory as the model's
weights (vLLM does) would otherwise read the head's tensors as weights of the model. `load_head`
reads that folder, and the directory itself for versions saved before the head moved; it reads
only safetensors and refuses pickle files in either place.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from inference.engine.loading import PICKLE_SUFFIXES, ArtifactError
from inference.engine.parser import STRATEGIES

HEAD_WEIGHTS_NAME = "meta_head.safetensors"
HEAD_CONFIG_NAME = "meta_head.json"
# The head's folder inside a model directory (see the module's docstring for why not its top).
HEAD_DIR_NAME = "cogloop"
HEAD_DTYPE = torch.float32
# Targets with this value (a step whose strategy the parser could not name) add no strategy loss.
IGNORE_STRATEGY = -100

# inner = round(hidden * INNER_RATIO) puts the head at ~2.0M parameters for hidden 1536.
INNER_RATIO = 0.85
MIN_INNER = 16


class HeadArtifactError(ArtifactError, ValueError):
    """A metacognition head on disk that must not be loaded (pickle, incomplete, mismatched)."""


@dataclass
class MetaHeadConfig:
    hidden_size: int
    inner_size: int
    n_strategies: int = len(STRATEGIES)
    # False until the head has been trained jointly with the model: its outputs then mean nothing,
    # and `predict` reports no confidence rather than a number that looks like one.
    trained: bool = False

    @classmethod
    def for_hidden(cls, hidden_size: int, *, trained: bool = False) -> MetaHeadConfig:
        """A head scaled to the base model: ``inner = max(16, round(0.85 * hidden))``.

        Parameters: ``2h`` (LayerNorm) + ``h*i + i`` (trunk) + ``4i + 4`` (strategies) + ``i + 1``
        (confidence) = ``2h + h*i + 6i + 5``.

        - hidden 1536 (DeepSeek-R1-Distill-Qwen-1.5B): inner 1306, 2,016,929 parameters.
        - hidden 128 (cogloop-tiny): inner 109, 14,867 parameters.
        """
        if hidden_size <= 0:
            raise ValueError(f"hidden_size must be positive, got {hidden_size}")
        inner = max(MIN_INNER, round(hidden_size * INNER_RATIO))
        return cls(hidden_size=hidden_size, inner_size=inner, trained=trained)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> MetaHeadConfig:
        known = {"hidden_size", "inner_size", "n_strategies", "trained"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HeadArtifactError(f"unknown keys in {HEAD_CONFIG_NAME}: {unknown}")
        return cls(
            hidden_size=int(data["hidden_size"]),
            inner_size=int(data["inner_size"]),
            n_strategies=int(data.get("n_strategies", len(STRATEGIES))),
            trained=bool(data.get("trained", False)),
        )


def _keep_float32(t: Tensor) -> Tensor:
    return t.to(HEAD_DTYPE) if t.is_floating_point() and t.dtype != HEAD_DTYPE else t


class MetaHead(nn.Module):
    def __init__(self, config: MetaHeadConfig) -> None:
        super().__init__()
        if config.n_strategies != len(STRATEGIES):
            raise ValueError(f"n_strategies must be {len(STRATEGIES)} (one per name in STRATEGIES)")
        self.config = config
        self.norm = nn.LayerNorm(config.hidden_size, dtype=HEAD_DTYPE)
        self.trunk = nn.Linear(config.hidden_size, config.inner_size, dtype=HEAD_DTYPE)
        self.strategy = nn.Linear(config.inner_size, config.n_strategies, dtype=HEAD_DTYPE)
        self.confidence = nn.Linear(config.inner_size, 1, dtype=HEAD_DTYPE)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True):
        # Device moves go through; dtype casts (also from a parent model's .to(bf16)) do not.
        return super()._apply(lambda t: _keep_float32(fn(t)), recurse)

    def features(self, states: Tensor) -> Tensor:
        """Trunk features for hidden states of shape ``[..., hidden]``, in float32."""
        states = states.to(device=self.trunk.weight.device, dtype=HEAD_DTYPE)
        return F.gelu(self.trunk(self.norm(states)))

    def strategy_logits(self, states: Tensor) -> Tensor:
        """``[..., hidden] -> [..., n_strategies]``; any leading (batch, step) dimensions."""
        return self.strategy(self.features(states))

    def confidence_logit(self, states: Tensor, step_states: Tensor | None = None) -> Tensor:
        """``[..., hidden] -> [...]``: a scalar for one answer state, ``[batch]`` for a batch.

        With ``step_states`` (``[..., n_steps, hidden]``) the trunk features of the answer and
        of every step are max-pooled first: one step whose features say "this went wrong" is
        enough to lower the confidence, which the answer's state alone rarely carries.
        """
        features = self.features(states)
        if step_states is not None and step_states.shape[-2] > 0:
            features = torch.maximum(features, self.features(step_states).amax(dim=-2))
        return self.confidence(features).squeeze(-1)

    def forward(self, step_states: Tensor, answer_state: Tensor) -> dict[str, Tensor]:
        """``step_states [n_steps, hidden]``, ``answer_state [hidden]`` ->
        ``strategy_logits [n_steps, n_strategies]`` and a scalar ``confidence_logit``."""
        if step_states.dim() != 2 or step_states.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"step_states must be [n_steps, {self.config.hidden_size}], got {tuple(step_states.shape)}"
            )
        if answer_state.shape != (self.config.hidden_size,):
            raise ValueError(
                f"answer_state must be [{self.config.hidden_size}], got {tuple(answer_state.shape)}"
            )
        return {
            "strategy_logits": self.strategy_logits(step_states),
            "confidence_logit": self.confidence_logit(answer_state, step_states),
        }


def count_parameters(head: nn.Module) -> int:
    return sum(p.numel() for p in head.parameters())


def save_head(head: MetaHead, directory: str | Path) -> Path:
    """Write the head into ``<directory>/cogloop/``; returns that folder."""
    target = Path(directory) / HEAD_DIR_NAME
    target.mkdir(parents=True, exist_ok=True)
    # contiguous CPU copies: safetensors refuses shared or strided storage.
    tensors = {k: v.detach().to("cpu", HEAD_DTYPE).contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(target / HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
    (target / HEAD_CONFIG_NAME).write_text(json.dumps(head.config.to_json(), indent=2) + "\n")
    return target


def load_head(directory: str | Path, *, device: str | torch.device = "cpu") -> MetaHead | None:
    """The head saved in model directory `directory`, in float32, or None when it holds no head.

    Read from ``cogloop/`` inside it, else (a version saved before the head moved there) from
    the directory itself. Only ``meta_head.safetensors`` is read; a pickled head
    (``meta_head.bin``, ``.pt``, ...) in either place is refused with `HeadArtifactError` (a
    ValueError), as is a head whose weights or config is missing.
    """
    directory = Path(directory)
    places = (directory / HEAD_DIR_NAME, directory)
    for place in places:
        pickles = sorted(p.name for p in place.glob("meta_head.*") if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise HeadArtifactError(f"metacognition head must be safetensors; refusing {pickles} in {place}")
    for place in places:
        weights, config_path = place / HEAD_WEIGHTS_NAME, place / HEAD_CONFIG_NAME
        if not weights.exists() and not config_path.exists():
            continue
        if not weights.exists() or not config_path.exists():
            raise HeadArtifactError(f"incomplete metacognition head in {place}: need both files")
        return _read_head(weights, config_path).to(device)
    return None


def _read_head(weights: Path, config_path: Path) -> MetaHead:
    config = MetaHeadConfig.from_json(json.loads(config_path.read_text()))
    head = MetaHead(config)
    state = load_file(str(weights), device="cpu")
    try:
        head.load_state_dict({k: _keep_float32(v) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise HeadArtifactError(
            f"metacognition head in {weights.parent} does not match its config: {exc}"
        ) from exc
    return head


def step_end_positions(
    offsets: Sequence[tuple[int, int]], text: str, step_char_ends: Sequence[int]
) -> list[int]:
    """For each step, the index of the last token whose span ends at or before the step's end.

    `offsets` is a fast tokenizer's offset mapping for `text` (``(start, end)`` characters per
    token); `step_char_ends` holds the character index just past each step. The returned indices
    pick the hidden states the head reads.

    Zero-width spans (special tokens such as BOS/EOS report ``(0, 0)``) are skipped, so an EOS at the
    end of the sequence is never mistaken for a step end. Real tokens' ends are assumed not to
    decrease, which holds for fast tokenizers. A step ending before the first real token ends maps
    to that first token, so the result always has one position per step.
    """
    if not step_char_ends:
        return []
    for end in step_char_ends:
        if not 0 <= end <= len(text):
            raise ValueError(f"step end {end} is outside the text (length {len(text)})")
    real = [(i, span_end) for i, (start, span_end) in enumerate(offsets) if span_end > start]
    if not real:
        raise ValueError("no tokens with a character span: cannot place step ends")
    token_ends = [span_end for _, span_end in real]
    positions = []
    for end in step_char_ends:
        k = bisect_right(token_ends, end) - 1
        positions.append(real[max(k, 0)][0])
    return positions


@torch.no_grad()
def predict(head: MetaHead, step_states: Tensor, answer_state: Tensor) -> dict:
    """Strategy names and probabilities per step, and the answer confidence.

    ``confidence`` is None (absent, not a number) while ``head.config.trained`` is False: an
    untrained head's sigmoid hovers near 0.5 and would read as a real judgement. Its strategies are
    still returned, flagged by ``"untrained": True``.
    """
    return predict_batch(head, [step_states], answer_state.unsqueeze(0))[0]


@torch.no_grad()
def predict_batch(head: MetaHead, step_states: Sequence[Tensor], answer_states: Tensor) -> list[dict]:
    """`predict` for many answers in one pass: ``step_states[i] [n_steps_i, hidden]``,
    ``answer_states [n_answers, hidden]``.

    The answers' states are stacked as ``[answer, step 1, ..., step n, answer, ...]``, padded up
    to the longest with the answer's own state again: padding that repeats the answer leaves the
    max-pool of `MetaHead.confidence_logit` unchanged, so every answer gets what it gets alone.
    """
    if answer_states.dim() != 2 or answer_states.shape[0] != len(step_states):
        raise ValueError(
            f"answer_states must be [{len(step_states)}, hidden], got {tuple(answer_states.shape)}"
        )
    for steps in step_states:
        if steps.dim() != 2 or steps.shape[-1] != head.config.hidden_size:
            raise ValueError(
                f"step_states must be [n_steps, {head.config.hidden_size}], got {tuple(steps.shape)}"
            )
    if answer_states.shape[-1] != head.config.hidden_size:
        raise ValueError(
            f"answer_states must be [n, {head.config.hidden_size}], got {tuple(answer_states.shape)}"
        )
    if not step_states:
        return []
    was_training = head.training
    head.eval()
    try:
        longest = max(s.shape[0] for s in step_states)
        answers = answer_states.to(HEAD_DTYPE)
        rows = torch.stack(
            [
                torch.cat(
                    [answer[None], steps.to(HEAD_DTYPE), answer[None].expand(longest - steps.shape[0], -1)]
                )
                for answer, steps in zip(answers, step_states)
            ]
        )  # [n_answers, 1 + longest, hidden]
        features = head.features(rows)
        probs = head.strategy(features[:, 1:]).softmax(dim=-1)
        confidences = torch.sigmoid(head.confidence(features.amax(dim=1)).squeeze(-1)).tolist()
    finally:
        head.train(was_training)
    trained = bool(head.config.trained)
    results = []
    for i, steps in enumerate(step_states):
        row_probs = probs[i, : steps.shape[0]]
        results.append(
            {
                "strategies": [STRATEGIES[k] for k in row_probs.argmax(dim=-1).tolist()],
                "strategy_probs": row_probs.tolist(),
                "confidence": confidences[i] if trained else None,
                "untrained": not trained,
            }
        )
    return results


def meta_loss(
    out: dict[str, Tensor], strategy_targets: Tensor, answer_correct: Tensor | float | None
) -> Tensor:
    """L_meta: strategy cross-entropy plus confidence binary cross-entropy, summed with weight 1 each.

    - ``out["strategy_logits"] [n_steps, n_strategies]`` against ``strategy_targets [n_steps]``
      (indices into `STRATEGIES`; `IGNORE_STRATEGY` for steps without a label), averaged over
      labelled steps; zero when no step is labelled.
    - ``out["confidence_logit"]`` (scalar or ``[batch]``) against `answer_correct` (1.0 when the
      answer was right, 0.0 when not) with ``binary_cross_entropy_with_logits``; its gradient in the
      logit is ``sigmoid(logit) - answer_correct``, so a right answer pushes confidence up.
      A soft target (a reviewer's confidence) works the same way; None leaves the term out.

    The trainer scales the sum by β (DESIGN "Training"); no weighting happens here.
    """
    logits = out["strategy_logits"].float()
    targets = strategy_targets.to(device=logits.device, dtype=torch.long)
    labelled = targets != IGNORE_STRATEGY
    if bool(labelled.any()):
        strategy_loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_STRATEGY
        )
    else:
        # keeps the graph connected (and the loss finite) for answers with no labelled steps
        strategy_loss = logits.sum() * 0.0
    if answer_correct is None:
        return strategy_loss
    confidence_logit = out["confidence_logit"].float()
    target = torch.as_tensor(answer_correct, dtype=torch.float32, device=confidence_logit.device)
    confidence_loss = F.binary_cross_entropy_with_logits(confidence_logit, target.expand_as(confidence_logit))
    return strategy_loss + confidence_loss
