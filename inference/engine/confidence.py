"""The model's own confidence in an answer, read from the log-probabilities of its tokens.

``answer_confidence(tokens, logprobs)`` takes the generated tokens as text, in order, and the
natural log-probability the model gave each one (built-in generation records them; an
OpenAI-compatible server returns them as ``logprobs.content``). The same function serves both,
so a posted answer and a generated one are measured alike.

- The answer is what follows the first ``</think>``. Without one, the text is split as the
  parser splits it: steps that never closed their thinking (a cut-off generation) hold no
  answer, and a text that does not read like reasoning is all answer.
- When the answer gives a final number (``agreement.final_number``: the number that
  self-consistency compares), the confidence is ``exp(sum of log-probabilities)`` of the
  tokens holding that number's digits: the probability the model gave to writing exactly that
  number there. A sum, not a mean: Qwen's tokenizer writes a number digit by digit, and after
  an uncertain first digit the rest are usually near-certain, so a mean would report "1800"
  as confident whichever first digit the model hesitated over. Currency signs and separators
  are formatting choices, not part of the value, and are left out.
- Otherwise (a worded answer) it is ``exp(mean log-probability)`` of the answer's tokens that
  hold more than whitespace: the geometric mean probability per token, which does not shrink
  with the length of the answer.
- None when there are no log-probabilities or the answer holds no token.

The log-probabilities are the model's own distribution, before temperature and top-p: those
are sampling choices, not the model's belief, and OpenAI-compatible servers report the same.

What it measures is how firmly the model writes its answer, not whether its reasoning holds:
an answer that restates a number the reasoning already reached is written with near
certainty. It is one signal among the score's others.

Plain Python (no Django, no torch): the web role reads posted log-probabilities with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .agreement import final_number
from .parser import parse_output

THINK_END = "</think>"


def answer_confidence(tokens: Sequence[str], logprobs: Sequence[float]) -> float | None:
    if not tokens or len(tokens) != len(logprobs):
        return None
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token)
    text = "".join(tokens)
    think_end = text.find(THINK_END)
    if think_end < 0 and not parse_output(text).answer:
        return None
    answer_from = 0 if think_end < 0 else think_end + len(THINK_END)
    answer = [i for i, s in enumerate(starts) if s >= answer_from and tokens[i].strip()]
    if not answer:
        return None
    number = final_number(text[answer_from:])
    if number is not None:
        start, end = answer_from + number[0], answer_from + number[1]
        digits = [
            i
            for i in answer
            if starts[i] < end and starts[i] + len(tokens[i]) > start and any(c.isdigit() for c in tokens[i])
        ]
        if digits:
            return math.exp(sum(logprobs[i] for i in digits))
    return math.exp(sum(logprobs[i] for i in answer) / len(answer))
