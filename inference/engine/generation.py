"""Batched generation with a loaded model, and the model slot that serving swaps.

Batching here is the plain kind (a list of prompts in, left-padded, one ``generate``); the
dynamic batcher that groups concurrent requests sits on top of ``generate_batch``.

Every generation records the log-probability of each token it kept, from the model's own
distribution (before temperature and top-p), and the answer confidence they give
(``confidence.answer_confidence``). They are read as generation goes, one step at a time,
so a batch keeps a vocabulary-wide row per sequence for one step instead of for every step
(``output_scores`` would hold batch x steps x vocabulary: gigabytes at R1's 152k tokens).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .chat import prompt_text
from .confidence import answer_confidence

if TYPE_CHECKING:  # annotations only: importing torch here would load it in every process
    import torch

    from .metahead import MetaHead

T = TypeVar("T")


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 96
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.95


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    # natural log-probability of each completion token, and the answer confidence they give
    token_logprobs: tuple[float, ...] | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class TokenStates:
    """The tokens a generation fed through the model and the last layer's states at each.

    ``token_ids`` are the prompt's tokens followed by the kept completion's (no padding, no
    EOS); ``states [len(token_ids), hidden]`` are the final (normed) hidden states at those
    positions, the ones ``model(..., output_hidden_states=True).hidden_states[-1]`` gives.
    """

    token_ids: list[int]
    states: torch.Tensor


def generate_batch(
    model, tokenizer, prompts: list[str], params: GenerationParams, *, budgets: list[int] | None = None
) -> list[Generation]:
    """Generate for several prompts at once (left padding + attention mask).

    ``budgets`` gives each sequence its own token budget (default: params.max_new_tokens):
    a completion stops at its first EOS or at its budget, whichever comes first.
    """
    return _generate(model, tokenizer, prompts, params, budgets=budgets, keep_states=False)[0]


def generate_batch_with_states(
    model, tokenizer, prompts: list[str], params: GenerationParams, *, budgets: list[int] | None = None
) -> tuple[list[Generation], list[TokenStates | None]]:
    """`generate_batch`, plus the last-layer states generation computed for every kept token.

    The states come from the decoding passes themselves (a hook on the decoder's output), so
    reading them costs no second forward. A token's state exists once the token has been fed,
    i.e. from the step after it was generated; to have one for a completion's last token
    whatever stopped it, generation runs one token past the largest budget and cuts it off.
    Completions are the same as `generate_batch`'s: decoding is causal, so the extra token
    changes nothing before it. A model without a decoder module to listen to gives None
    for every row.
    """
    return _generate(model, tokenizer, prompts, params, budgets=budgets, keep_states=True)


def _generate(model, tokenizer, prompts, params, *, budgets, keep_states):
    import torch
    from transformers import LogitsProcessorList

    started = time.monotonic()
    texts = [prompt_text(tokenizer, p) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    kwargs = {
        "max_new_tokens": params.max_new_tokens + (1 if keep_states else 0),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(do_sample=False)
    captured: list = []
    decoder = _decoder_of(model) if keep_states else None
    hook = decoder.register_forward_hook(_capture_last_state(captured)) if decoder is not None else None
    chosen = ChosenTokenLogprobs()
    try:
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs, logits_processor=LogitsProcessorList([chosen]))
    finally:
        if hook is not None:
            hook.remove()
    width = enc["input_ids"].shape[1]
    logprobs = chosen.finish(out)
    elapsed = time.monotonic() - started
    budgets = budgets or [params.max_new_tokens] * len(prompts)
    results, kept = [], []
    for row in range(len(prompts)):
        new = out[row, width : width + budgets[row]].tolist()
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id)]
        kept.append(new)
        token_logprobs = tuple(logprobs[row][: len(new)])
        results.append(
            Generation(
                text=tokenizer.decode(new, skip_special_tokens=False),
                prompt_tokens=int(enc["attention_mask"][row].sum()),
                completion_tokens=len(new),
                seconds=elapsed,
                token_logprobs=token_logprobs,
                confidence=answer_confidence(
                    tokenizer.batch_decode([[t] for t in new], skip_special_tokens=False), token_logprobs
                ),
            )
        )
    if not keep_states:
        return results, []
    if not captured:  # no decoder to listen to: the head reads these rows with a forward
        return results, [None] * len(results)
    # captured[0]: the prompt pass [batch, width, hidden]; captured[k]: the pass that fed
    # generated token k-1, [batch, 1, hidden]. A kept completion of n tokens needs passes 1..n,
    # which exist: generation ran at least one token past every kept one.
    fed = torch.cat(captured[1:], dim=1) if len(captured) > 1 else captured[0][:, :0]
    token_states = []
    for row, new in enumerate(kept):
        prompt_len = results[row].prompt_tokens
        ids = enc["input_ids"][row, width - prompt_len :].tolist() + new
        states = torch.cat([captured[0][row, width - prompt_len :], fed[row, : len(new)]], dim=0)
        token_states.append(TokenStates(ids, states))
    return results, token_states


class ChosenTokenLogprobs:
    """A logits processor that keeps the log-probability of each token generation picks.

    At a step it is handed the logits of the next position; the token picked from them shows
    up only as the last input of the following step (or, after the last step, at the end of
    the returned sequences), so each step's log-softmax waits one step for its token. It is
    the first of the processors generate adds for sampling (temperature, top-p), so it reads
    the model's own distribution; a processor named by the model's generation config (a
    repetition penalty) would come before it. It returns the logits untouched.
    """

    def __init__(self) -> None:
        self._waiting: torch.Tensor | None = (
            None  # [batch, vocab] log-softmax of the step whose token is not known yet
        )
        self._steps: list = []  # [batch] per step

    def __call__(self, input_ids, scores):
        import torch

        if self._waiting is not None:
            self._steps.append(self._waiting.gather(1, input_ids[:, -1:]).squeeze(1))
        self._waiting = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences) -> list[list[float]]:
        """Per row, the log-probability of every generated token (padding after EOS included)."""
        import torch

        if self._waiting is not None:
            self._steps.append(self._waiting.gather(1, sequences[:, -1:]).squeeze(1))
            self._waiting = None
        if not self._steps:
            return [[] for _ in range(sequences.shape[0])]
        return torch.stack(self._steps, dim=1).tolist()


def _decoder_of(model):
    """The module whose output is the last layer's (normed) states, or None when the model
    does not name one (then states are not kept and the head falls back to a forward)."""
    try:
        decoder = model.get_decoder()
    except (AttributeError, ValueError, NotImplementedError):
        return None
    # a model that is its own "decoder" would hand over logits, not states
    return decoder if decoder is not model else None


def _capture_last_state(into: list):
    """A forward hook that keeps the decoder's output of this thread's passes only: a model is
    one object, and another thread generating with it runs through the same module."""
    owner = threading.get_ident()

    def hook(_module, _inputs, output) -> None:
        if threading.get_ident() == owner:
            into.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    return hook


def run_on_own_thread(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Run ``fn`` on a new thread that ends when it returns; return its result or raise its error.

    For model work outside the batcher's thread (loading a version, its smoke generation).
    torch's OpenMP runtime (libgomp) gives every thread that runs a parallel op its own team
    of helper threads and keeps that team until the thread exits. Once a process holds more
    such threads than it has cores, every team stops spinning between parallel regions and
    sleeps on a futex instead, so each of the thousands of small ops in a generation pays a
    wake-up: a second team left on a long-lived thread (a watcher, a request thread, the
    main thread) doubled the batcher's per-batch time on 2 cores. Run here, the team goes
    away with the thread.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"model-work-{getattr(fn, '__name__', 'fn')}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


@dataclass(frozen=True)
class LoadedModel:
    version_id: int | None
    model: Any
    tokenizer: Any
    head: MetaHead | None = None  # the metacognition head (float32), when the version has one


class ModelSlot:
    """Holds the model a serving process answers with; swapped by one reference assignment.

    A caller takes ``slot.current`` once per batch, so an in-flight batch finishes on the
    model it started with while new batches see the new one.
    """

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old, self._current = self._current, loaded
        return old
