"""The OpenAI-compatible gateway: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A product app points the official OpenAI client at Cogloop (``base_url=<host>/v1``,
``api_key=<its Cogloop key>``) and changes nothing else. Every choice becomes an Output scored
and captured as ``/api/v1/generate``'s are (a sample group when n > 1); each choice carries its
output's id and scores in an extra ``cogloop`` object, which OpenAI's clients keep (their
models allow extra fields).

What a request means here (decided for a reasoning model that R1's guidance says to prompt
with one user turn and no system prompt):

- ``messages``: the last message must be the user's, and its text is the prompt. System and
  developer messages, and earlier turns, are ignored, not refused: generic clients and
  frameworks add a system message by default, and R1 answers best without one.
- ``model``: the active version's name (``GET /v1/models``) or ``cogloop``, which always means
  the active version; anything else is a 404 ``model_not_found``. ``model`` in the response
  is the version that answered.
- ``temperature`` / ``top_p``: when left out, /api/v1/generate's defaults: greedy for n = 1,
  R1's 0.6 / 0.95 for n > 1 (n > 1 at temperature 0 is a 400: its answers would all be one).
- ``max_tokens`` (or ``max_completion_tokens``): at most MAX_NEW_TOKENS_LIMIT.
- ``stop``: up to 4 sequences. The built-in batcher cannot stop on them; the answer is cut at
  the earliest one (left out, ``finish_reason: "stop"``), and the cut answer is what is
  stored and scored.
- ``logprobs``: each answer token's log-probability under the model (before temperature and
  top-p). Tokens are the answer encoded again; where that does not give the tokens generated,
  or on an idempotent replay, ``logprobs`` is null. ``top_logprobs`` above 0 is a 400: the
  engine keeps only the chosen token's.
- ``seed``: accepted and not honoured. A batch mixes requests, so one request's sampling
  cannot be seeded; temperature 0 answers are the reproducible ones. ``system_fingerprint``
  names the weights (their manifest's sha256), so a client can tell when they change.
- ``stream``: server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``. The
  built-in batcher produces whole answers, so the stream opens at once (a comment line), the
  answer is generated and stored, and then its finished text is sent in chunks of a word;
  each choice's last chunk carries its logprobs and ``cogloop`` object. The Output is stored
  before the first chunk of text leaves, and once the stream has opened the answer is
  generated and stored whatever the client does: one that disconnects mid-stream still
  leaves it recorded (one gone before the stream opened has nothing generated). An error
  after the stream opened arrives as ``data: {"error": ...}``.
- The message ``content`` is the model's raw text, reasoning, ``</think>`` and answer, as an
  OpenAI-compatible server (vLLM) serving R1 returns it; ``cogloop.answer`` is the parsed
  final answer.
- ``Idempotency-Key`` header: as on /api/v1/generate (a replay answers what was stored).
- Other fields: ``user``, ``metadata``, ``store``, ``service_tier``, ``parallel_tool_calls``
  are ignored; tools, functions, penalties, ``logit_bias``, non-text ``response_format`` and
  audio are refused with a 400 when set, and unknown fields too, naming them.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with its
statuses (400, 401, 404, 409, 413, 429 with Retry-After, 503).
"""

from __future__ import annotations

import json
import logging
import re

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from cogloop.api import exception_handler as project_exception_handler
from cogloop.errors import ApplicationError
from inference import services
from inference.api import (
    SAMPLING_TEMPERATURE,
    SAMPLING_TOP_P,
    AppApi,
    StrictCharField,
    _check_prompt_size,
    idempotency_key_of,
)
from inference.models import ModelVersion, Output

log = logging.getLogger("cogloop.inference")

# -- errors in OpenAI's shape --------------------------------------------------------------

_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "requests",
}
_ERROR_CODES = {  # the project's code -> OpenAI's, where OpenAI's clients know one
    "authentication_failed": "invalid_api_key",
    "not_authenticated": "invalid_api_key",
    "throttled": "rate_limit_exceeded",
}


def openai_error(status_code: int, code: str, message: str, param: str | None = None) -> dict:
    kind = _ERROR_TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": _ERROR_CODES.get(code, code)}}


def _first_problem(fields: dict) -> tuple[str, str]:
    """The first field at fault and its first message, from DRF's (possibly nested) errors."""
    name, problems = next(iter(fields.items()))
    while isinstance(problems, dict):
        inner, problems = next(iter(problems.items()))
        name = f"{name}.{inner}"
    message = problems[0] if isinstance(problems, list) and problems else str(problems)
    return str(name), str(message)


def _openai_body(body: dict, status_code: int) -> dict:
    """The project's error body (cogloop.api) in OpenAI's shape."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code, message, param = error.get("code", "error"), error.get("message", ""), error.get("param")
    if error.get("fields"):
        param, problem = _first_problem(error["fields"])
        message = f"{param}: {problem}" if code == "validation_error" else message
    return openai_error(status_code, code, message, param)


def exception_handler(exc, context):
    """The project's handler (so every error keeps its status, code and headers), reshaped; an
    unexpected error is a 500 in the same shape, since OpenAI's clients read JSON errors."""
    response = project_exception_handler(exc, context)
    if response is None:
        log.exception("the gateway failed on a request", exc_info=exc)
        return Response(
            openai_error(500, "server_error", "The server failed on this request; the failure is logged."),
            status=500,
        )
    response.data = _openai_body(response.data, response.status_code)
    return response


def _application_error_body(exc: ApplicationError) -> dict:
    return openai_error(exc.status, exc.code, exc.message, exc.extra.get("param"))


def not_found(request, rest: str = ""):
    return JsonResponse(
        openai_error(
            404,
            "not_found",
            f"no endpoint at {request.path}: this server has "
            "POST /v1/chat/completions, GET /v1/models and GET /v1/models/{model}",
        ),
        status=404,
    )


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="for people; a 400 names the field first")
    type = serializers.CharField(
        help_text="invalid_request_error, authentication_error, permission_error, requests (429), "
        "server_error (5xx)"
    )
    param = serializers.CharField(allow_null=True, help_text="the request field at fault, if one is")
    code = serializers.CharField(
        help_text="stable: validation_error, invalid_api_key, model_not_found, rate_limit_exceeded, no_model, ..."
    )


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


_ERROR_DESCRIPTIONS = {
    400: "an invalid or unsupported field (named in `param`), or malformed JSON",
    401: "no valid API key",
    404: "no such model (GET /v1/models lists the one served)",
    409: "an Idempotency-Key reused with another request",
    413: "a prompt or body over a documented limit",
    429: "too many requests for this key (Retry-After says when to try again)",
    503: "no model is served yet, or no answer within the generation timeout",
}


def openai_error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {s: OpenApiResponse(OpenAIErrorSerializer, description=_ERROR_DESCRIPTIONS[s]) for s in statuses}


class GatewayApi(AppApi):
    def get_exception_handler(self):
        return exception_handler


# -- the request ------------------------------------------------------------------------------

MAX_STOP_SEQUENCES = 4
MAX_MESSAGES = 256
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Fields OpenAI's API defines that change nothing here.
IGNORED_FIELDS = {
    "user",
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "seed",
    "stream_options",
}
# Fields whose feature this server does not have: refused when set to anything but "off".
UNSUPPORTED_FIELDS = {
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "response_format": (None, {"type": "text"}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "web_search_options": (None,),
    "reasoning_effort": (None,),
}


def _text_of(content, where: str) -> str:
    """A message's text: a string, or OpenAI's list of parts of type "text"."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise serializers.ValidationError(
                    f"{where}.content[{i}]: only text parts ({{'type': 'text', 'text': ...}}) are understood"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise serializers.ValidationError(f"{where}.content must be a string or a list of text parts")


class ChatCompletionInputSerializer(serializers.Serializer):
    model = StrictCharField(
        max_length=200, help_text=f"the active version's name, or {services.CHAT_MODEL_ALIAS!r}"
    )
    messages = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_MESSAGES,
        help_text="the last must be the user's: its text is the prompt; system, developer and earlier "
        "messages are ignored (R1 is prompted with one user turn, no system prompt)",
    )
    n = serializers.IntegerField(required=False, default=1, min_value=1, max_value=services.MAX_SAMPLES)
    temperature = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=2.0,
        help_text=f"0 (greedy) by default; {SAMPLING_TEMPERATURE} when n > 1",
    )
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    stop = serializers.JSONField(required=False, allow_null=True, help_text="a string or up to 4 strings")
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    logprobs = serializers.BooleanField(required=False, default=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=20)
    seed = serializers.IntegerField(required=False, allow_null=True, help_text="accepted, not honoured")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            known = set(self.fields) | IGNORED_FIELDS
            for name in sorted(set(data) - known - set(UNSUPPORTED_FIELDS)):
                errors[name] = ["unrecognized request argument"]
            for name, off in UNSUPPORTED_FIELDS.items():
                if name in data and data[name] not in off:
                    errors[name] = ["not supported by this server"]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate_messages(self, messages):
        for i, message in enumerate(messages):
            if message.get("role") not in ROLES:
                raise serializers.ValidationError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        last = messages[-1]
        if last["role"] != "user":
            raise serializers.ValidationError(
                f"the last message must be the user's (the prompt), not the {last['role']}'s"
            )
        text = _text_of(last.get("content"), f"messages[{len(messages) - 1}]")
        _check_prompt_size(text)
        # the prompt field's rules: no NUL, no lone surrogate, not blank
        try:
            return StrictCharField(trim_whitespace=True).run_validation(text)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(
                f"messages[{len(messages) - 1}].content: {exc.detail[0]}"  # type: ignore[index]
            ) from None

    def validate_stop(self, stop):
        if stop is None:
            return []
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or not 1 <= len(stops) <= MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise serializers.ValidationError(
                f"a non-empty string or a list of 1 to {MAX_STOP_SEQUENCES} non-empty strings"
            )
        return stops

    def validate(self, data):
        errors = {}
        limit = settings.COGLOOP["MAX_NEW_TOKENS_LIMIT"]
        asked = {k: data.get(k) for k in ("max_tokens", "max_completion_tokens") if data.get(k) is not None}
        if len(set(asked.values())) > 1:
            errors["max_completion_tokens"] = ["max_tokens and max_completion_tokens differ; send one"]
        for name, value in asked.items():
            if value > limit:
                errors[name] = [f"at most {limit}"]
        if data.get("top_logprobs"):
            errors["top_logprobs"] = ["only 0: the engine keeps the chosen token's log-probability alone"]
        if data.get("stream_options") and not data.get("stream"):
            errors["stream_options"] = ["only with stream: true"]
        if data["n"] > 1 and data.get("temperature") == 0:
            errors["temperature"] = ["n > 1 samples need a temperature above 0 (greedy answers are all one)"]
        if data.get("top_p") == 0:
            errors["top_p"] = ["must be above 0"]
        if errors:
            raise serializers.ValidationError(errors)
        n = data["n"]
        temperature = data.get("temperature")
        top_p = data.get("top_p")
        return {
            "model": data["model"],
            "prompt": data["messages"],
            "n": n,
            "max_new_tokens": next(iter(asked.values()), settings.COGLOOP["DEFAULT_MAX_NEW_TOKENS"]),
            "temperature": temperature
            if temperature is not None
            else (SAMPLING_TEMPERATURE if n > 1 else 0.0),
            "top_p": top_p if top_p is not None else SAMPLING_TOP_P,
            "stop": data.get("stop") or [],
            "logprobs": bool(data.get("logprobs")),
            "stream": data["stream"],
            "include_usage": bool((data.get("stream_options") or {}).get("include_usage")),
        }


# -- the response -----------------------------------------------------------------------------


def _completion_id(completion: services.ChatCompletion) -> str:
    first = completion.outputs[0]
    return f"chatcmpl-{(completion.group.id if completion.group else first.uuid).hex}"


def _logprobs_body(pieces) -> dict | None:
    if pieces is None:
        return None
    return {
        "content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8", "surrogatepass")), "top_logprobs": []}
            for t, lp in pieces
        ],
        "refusal": None,
    }


def _cogloop_of(output: Output, completion: services.ChatCompletion) -> dict:
    group = completion.group
    return {
        "output_id": str(output.uuid),
        "cognition_score": output.cognition_score,
        "consistency": output.consistency,
        "adaptability": output.adaptability,
        "model_confidence": output.model_confidence,
        "head_confidence": output.head_confidence,
        "answer": output.answer,
        "sample_group": str(group.id) if group else None,
        "is_majority": group.is_majority(output) if group else None,
    }


def _envelope(completion: services.ChatCompletion, requested_model: str, obj: str) -> dict:
    first = completion.outputs[0]
    version: ModelVersion | None = first.model_version
    return {
        "id": _completion_id(completion),
        "object": obj,
        "created": int(first.created_at.timestamp()),
        "model": version.name if version else requested_model,
        "system_fingerprint": f"cogloop-{version.sha256[:16]}" if version and version.sha256 else None,
    }


def _usage(completion: services.ChatCompletion) -> dict:
    completion_tokens = sum(o.completion_tokens or 0 for o in completion.outputs)
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": completion.prompt_tokens + completion_tokens,
    }


def completion_body(completion: services.ChatCompletion, requested_model: str) -> dict:
    group = completion.group
    return {
        **_envelope(completion, requested_model, "chat.completion"),
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": choice.output.raw_text, "refusal": None},
                "logprobs": _logprobs_body(choice.logprobs),
                "finish_reason": choice.finish_reason,
                "cogloop": _cogloop_of(choice.output, completion),
            }
            for i, choice in enumerate(completion.choices)
        ],
        "usage": _usage(completion),
        "cogloop": {
            "sample_group": str(group.id) if group else None,
            "majority_answer": group.majority_answer if group else None,
        },
    }


_WORDS = re.compile(r"\S+\s*|\s+")


def _event(body) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def completion_events(completion: services.ChatCompletion, requested_model: str, include_usage: bool):
    """A finished completion as OpenAI's chunks: per choice its role, its text a word at a time,
    then its finish reason with its logprobs and ``cogloop`` object."""
    envelope = _envelope(completion, requested_model, "chat.completion.chunk")

    def chunk(index: int, delta: dict, finish_reason=None, **extra) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **extra}
        return _event({**envelope, "choices": [choice]})

    for i, choice in enumerate(completion.choices):
        yield chunk(i, {"role": "assistant", "content": ""})
        for word in _WORDS.findall(choice.output.raw_text):
            yield chunk(i, {"content": word})
        yield chunk(
            i,
            {},
            choice.finish_reason,
            logprobs=_logprobs_body(choice.logprobs),
            cogloop=_cogloop_of(choice.output, completion),
        )
    if include_usage:
        yield _event({**envelope, "choices": [], "usage": _usage(completion)})
    yield "data: [DONE]\n\n"


# -- the views --------------------------------------------------------------------------------


class ChatCompletionsApi(GatewayApi):
    @extend_schema(
        operation_id="v1_chat_completions_create",
        request=ChatCompletionInputSerializer,
        responses={
            200: OpenApiResponse(
                description="OpenAI's chat.completion (or, with stream, text/event-stream of "
                "chat.completion.chunk), each choice with a `cogloop` object: output_id, scores, "
                "sample_group, is_majority"
            ),
            **openai_error_responses(400, 401, 404, 409, 413, 429, 503),
        },
        description=__doc__,
    )
    def post(self, request):
        body = request.data
        data = ChatCompletionInputSerializer(data=body)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        key = idempotency_key_of(request, {})
        asked = {
            k: v[k] for k in ("prompt", "n", "max_new_tokens", "temperature", "top_p", "stop", "logprobs")
        }
        # The model is checked now, before a stream opens: a wrong name or no model is a status.
        services.chat_model_resolve(name=v["model"])
        create = dict(
            app=self.app, **asked, idempotency_key=key, request_hash=services.request_hash({"chat": asked})
        )
        if not v["stream"]:
            completion = services.chat_completion_create(**create)
            return Response(completion_body(completion, v["model"]), status=status.HTTP_200_OK)
        response = StreamingHttpResponse(
            self._stream(create, v["model"], v["include_usage"]), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a proxy must pass the events on as they come
        return response

    @staticmethod
    def _stream(create: dict, requested_model: str, include_usage: bool):
        # Sent before the model runs, so the client has the response's headers at once.
        yield ": cogloop is generating\n\n"
        try:
            # Generation and storage finish inside this step, whatever the client does: one
            # that hangs up is noticed at the next write, after the Output is stored.
            completion = services.chat_completion_create(**create)
        except ApplicationError as exc:
            yield _event(_application_error_body(exc))
            return
        except Exception:
            log.exception("a streamed chat completion failed")
            yield _event(
                openai_error(500, "server_error", "The server failed on this request; the failure is logged.")
            )
            return
        yield from completion_events(completion, requested_model, include_usage)


def _model_body(version: ModelVersion) -> dict:
    return {
        "id": version.name,
        "object": "model",
        "created": int((version.promoted_at or version.created_at).timestamp()),
        "owned_by": "cogloop",
        "cogloop": {"version_id": version.pk, "sha256": version.sha256, "status": version.status},
    }


class ModelsApi(GatewayApi):
    @extend_schema(
        operation_id="v1_models_list",
        responses={
            200: OpenApiResponse(description="OpenAI's list of models: the active version"),
            **openai_error_responses(401, 429),
        },
        description=f"The active model version, in OpenAI's list shape (empty while none is active). "
        f"{services.CHAT_MODEL_ALIAS!r} is accepted as a model name too and always means it.",
    )
    def get(self, request):
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        return Response({"object": "list", "data": [_model_body(active)] if active else []})


class ModelDetailApi(GatewayApi):
    @extend_schema(
        responses={
            200: OpenApiResponse(description="OpenAI's model object"),
            **openai_error_responses(401, 404, 429),
        },
        description=f"The active version, by its name or {services.CHAT_MODEL_ALIAS!r}.",
    )
    def get(self, request, model):
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if active is None or model not in (active.name, services.CHAT_MODEL_ALIAS):
            raise ApplicationError(
                f"the model {model!r} does not exist",
                code="model_not_found",
                status=404,
                extra={"param": "model"},
            )
        return Response(_model_body(active))
