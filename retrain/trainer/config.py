from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RECIPES = ("layered", "lora-all", "full")
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfigError(ValueError):
    """A training configuration that must not start a run."""


@dataclass
class TrainConfig:
    """One fine-tune. Saved beside the weights it produces (recipe.json).

    recipe        layered: LoRA on q_proj/k_proj of the first ``layered_layers`` layers,
                  lm_head trainable (the seed's recipe); lora-all: LoRA on every linear
                  layer; full: every weight.
    alpha/beta/gamma  weights of L = alpha*L_ce + beta*L_meta + gamma*L_cons. L_meta trains the
                  metacognition head (step strategies, answer confidence); with beta 0 or no
                  labelled steps its term is absent (reported, not faked).

    Validation (validation.py): ``validation_share`` of the corrections' prompts (at least
    ``validation_min``, stratified by the error group they correct) and
    ``replay_validation_share`` of the replay prompts are held out of training. After each
    epoch the model answers them greedily. An attempt stops when every error group is fixed
    (accuracy >= ``fixed_threshold``) while the held-out replay answers stay right (accuracy
    at most ``replay_tolerance`` below the model's before training), when the signal has not
    improved for ``patience`` epochs, or at ``max_epochs``; it keeps its best epoch's weights.
    An attempt that did not converge is retried (next seed; ``retry_lr_factor`` times the
    learning rate when it damaged the replay answers, no curriculum when it kept them but
    under-fitted) up to ``max_attempts``. With fewer than
    ``2 * validation_min`` corrections, or ``validation_share`` 0, there is no validation: one
    attempt of ``epochs`` epochs, its last weights kept.
    """

    recipe: str = "lora-all"
    alpha: float = 0.7
    beta: float = 0.25
    gamma: float = 0.05
    # Epochs of a run without validation (too few corrections to hold any out).
    epochs: float = 8.0
    max_steps: int = -1
    validation_share: float = 0.15
    validation_min: int = 8
    replay_validation_share: float = 0.15
    # A group's accuracy counts as fixed from here (0.95: the gate's "blind spot fixed" is an
    # error rate under 5 %).
    fixed_threshold: float = 0.95
    # The gate rejects a slice losing more than 5 points; replay may lose at most this much.
    replay_tolerance: float = 0.05
    # Groups with fewer held-out prompts than this count in the overall accuracy only.
    validation_group_min: int = 4
    min_epochs: int = 2
    max_epochs: int = 12
    patience: int = 3
    max_attempts: int = 3
    retry_lr_factor: float = 0.5
    # A retry of an attempt that kept replay but did not fix its groups trains without the
    # curriculum. Measured on the demo's draws (docs/benchmarks.md): the draws whose blind
    # spot stalled under the curriculum's 30 % start learned it with every correction in
    # every epoch.
    retry_without_curriculum: bool = True
    validation_max_new_tokens: int = 96
    learning_rate: float = 1e-3
    # The head starts from random weights beside a pretrained model: at the model's rate its
    # confidence barely separates right from wrong answers within a run (measured: 0.48 vs
    # 0.47 after 336 steps), so it gets its own, higher rate.
    head_learning_rate: float = 1e-2
    # Whether L_meta's gradient reaches the model's weights (True) or only the head (False).
    # Measured on the demo's workload (docs/benchmarks.md): with beta 0.25 flowing into the
    # LoRA weights the candidate lost 12 points on the rest slice and the gate rejected it;
    # cut off, the same run promoted.
    meta_into_model: bool = False
    # Full-batch steps fitting the head to the merged model's states after training (0: none).
    head_fit_steps: int = 300
    batch_size: int = 8
    # Replay: served outputs the checker found consistent, mixed in at this share of the
    # reflection samples, so that learning the corrections does not unlearn the rest.
    replay_ratio: float = 1.0
    # Curriculum: the share of reflection rows per epoch rises linearly from start to end
    # (the rest are replay rows); off, every epoch is a plain shuffle of all rows.
    curriculum: bool = True
    # Share of the corrections rendered as self-corrections (the wrong step, then "Wait, that
    # is wrong: ..." and the fix; retrain.selectors.reflection_rows). 0: every correction is
    # the clean corrected reasoning.
    self_correction_share: float = 0.0
    curriculum_start: float = 0.3
    curriculum_end: float = 0.7
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    layered_layers: int = 3
    seed: int = 7
    max_length: int = 256
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise TrainConfigError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value > 1:
                raise TrainConfigError(f"loss weight {name} must lie in [0, 1], got {value!r}")
        if self.alpha == 0:
            raise TrainConfigError("loss weight alpha must be positive: without L_ce nothing is learned")
        if not 0 <= self.replay_ratio <= 4:
            raise TrainConfigError(f"replay_ratio must lie in [0, 4], got {self.replay_ratio!r}")
        if not (0 <= self.curriculum_start <= 1 and 0 <= self.curriculum_end <= 1):
            raise TrainConfigError("curriculum_start and curriculum_end must lie in [0, 1]")
        if self.curriculum and self.curriculum_end < self.curriculum_start:
            raise TrainConfigError(
                "a curriculum raises the reflection share: curriculum_end must be >= curriculum_start"
            )
        if not 0 <= self.self_correction_share <= 1:
            raise TrainConfigError("self_correction_share must lie in [0, 1]")
        if self.head_learning_rate <= 0:
            raise TrainConfigError("head_learning_rate must be positive")
        if not (0 <= self.validation_share < 0.5 and 0 <= self.replay_validation_share < 0.5):
            raise TrainConfigError("validation_share and replay_validation_share must lie in [0, 0.5)")
        if not (0 < self.fixed_threshold <= 1 and 0 <= self.replay_tolerance <= 1):
            raise TrainConfigError("fixed_threshold must lie in (0, 1] and replay_tolerance in [0, 1]")
        if self.validation_min < 1 or self.validation_group_min < 1 or self.patience < 1:
            raise TrainConfigError("validation_min, validation_group_min and patience must be positive")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise TrainConfigError("epochs must satisfy 1 <= min_epochs <= max_epochs")
        if self.max_attempts < 1 or not 0 < self.retry_lr_factor <= 1:
            raise TrainConfigError("max_attempts must be positive and retry_lr_factor lie in (0, 1]")
        if self.learning_rate <= 0 or self.batch_size < 1 or (self.epochs <= 0 and self.max_steps <= 0):
            raise TrainConfigError("learning_rate, batch_size and epochs/max_steps must be positive")

    def warnings(self) -> list[str]:
        out: list[str] = []
        if self.beta > 0.3:
            out.append(f"beta {self.beta} > 0.3 trades base language ability for the meta loss")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
