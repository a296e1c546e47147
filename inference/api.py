import logging
import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.shortcuts import get_object_or_404
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from redis.exceptions import RedisError
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from cogloop.api import error_responses
from cogloop.errors import ApplicationError
from cogloop.lockout import LockoutAwareBasicAuthentication, RefuseApiKeys
from inference import services
from inference.models import ModelVersion, Output

log = logging.getLogger("cogloop.inference")


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer cl_<prefix>.<secret>`` (or ``X-Api-Key``) -> the key's ProductApp."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        raw = (
            header[7:].strip()
            if header.lower().startswith("bearer ")
            else request.headers.get("X-Api-Key", "")
        )
        if not raw:
            return None
        key = services.api_key_authenticate(raw=raw)
        if key is None:
            raise AuthenticationFailed("invalid or revoked API key")
        return (None, key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "inference.api.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A product app's key: cl_<prefix>.<secret>",
        }


class LockoutAwareBasicScheme(BasicScheme):
    target_class = "cogloop.lockout.LockoutAwareBasicAuthentication"


class RefuseApiKeysScheme(OpenApiAuthenticationExtension):
    """It authenticates nobody (it only names an app key as out of place): no scheme to list."""

    target_class = "cogloop.lockout.RefuseApiKeys"
    name: list[str] = []

    def get_security_requirement(self, auto_schema):
        return None

    def get_security_definition(self, auto_schema):
        return []


# The throttle's fallback when the shared cache (Redis) is away: this process's own counters.
_LOCAL_THROTTLE_CACHE = LocMemCache("cogloop-throttle-fallback", {})
_THROTTLE_SHARED_RETRY_S = 5.0
_throttle_shared_down_until = 0.0


def _redis_client(cache: RedisCache):
    """The cache's Redis client, made once: Django's cache makes a new client object on every
    call (a millisecond of Python building its reply table), on the same connection pool."""
    client = getattr(cache._cache, "_throttle_client", None)
    if client is None:
        client = cache._cache._throttle_client = cache._cache.get_client(write=True)
    return client


def _window_counts(cache, key: str, window: int, ttl: int) -> tuple[int, int]:
    """Count one request in ``window`` and return (this window's count, the previous one's).

    On Redis one round trip (a pipeline of INCR, EXPIRE, GET); elsewhere (the per-process
    fallback) the cache's own add/incr/get.
    """
    current, previous = f"{key}:{window}", f"{key}:{window - 1}"
    if isinstance(cache, RedisCache):
        current, previous = cache.make_and_validate_key(current), cache.make_and_validate_key(previous)
        pipe = _redis_client(cache).pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, ttl)
        pipe.get(previous)
        count, _, before = pipe.execute()
        return int(count), int(before or 0)
    cache.add(current, 0, ttl)
    return cache.incr(current), int(cache.get(previous, 0))


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (settings: REST_FRAMEWORK DEFAULT_THROTTLE_RATES["api_key"]).

    A sliding window estimated from two fixed-window counters (this window's count plus the
    previous window's, weighted by how much of it still overlaps the last ``duration``
    seconds): one Redis round trip per request. DRF's own throttle keeps every request's
    timestamp in one list that it reads and writes whole, two round trips carrying up to the
    limit's worth of floats (6,000 at the default rate) on every request. Refused requests
    count too, so a client that keeps calling while refused stays refused.

    Counted in the shared cache; while that is unreachable, in this process's memory, so the
    API keeps answering without Redis (the limit then holds per process, not across them).
    The shared cache is tried again every few seconds.
    """

    scope = "api_key"

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}

    def allow_request(self, request, view):
        global _throttle_shared_down_until
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        ttl = 2 * self.duration + 1
        counts = None
        if time.monotonic() >= _throttle_shared_down_until:
            try:
                counts = _window_counts(caches["default"], self.key, window, ttl)
            except (RedisError, OSError) as exc:
                _throttle_shared_down_until = time.monotonic() + _THROTTLE_SHARED_RETRY_S
                log.warning(
                    "throttle cache unreachable, counting per process: %s: %s", type(exc).__name__, exc
                )
        if counts is None:
            counts = _window_counts(_LOCAL_THROTTLE_CACHE, self.key, window, ttl)
        current, previous = counts
        overlap = 1.0 - (self.now - window * self.duration) / self.duration
        return previous * overlap + current <= self.num_requests

    def wait(self):
        return max(self.window_end - self.now, 1.0)


class HasApiKey(BasePermission):
    def has_permission(self, request, view):
        return request.auth is not None


class AppApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]

    @property
    def app(self):
        return self.request.auth.app


class OutputSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid")
    model_version = serializers.CharField(source="model_version.name", default=None)

    class Meta:
        model = Output
        fields = [
            "id",
            "prompt",
            "raw_text",
            "reasoning",
            "steps",
            "answer",
            "cognition_score",
            "consistency",
            "adaptability",
            "score_parts",
            "model_confidence",
            "head_confidence",
            "sample_group",
            "model_version",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
        ]


_DATETIME = serializers.DateTimeField()


def output_body(output: Output) -> dict:
    """OutputSerializer(output).data without building a ModelSerializer's eighteen fields on
    every request (about a millisecond, a fifth of a scored output's time); a test holds the
    two equal."""
    return {
        "id": str(output.uuid),
        "prompt": output.prompt,
        "raw_text": output.raw_text,
        "reasoning": output.reasoning,
        "steps": output.steps,
        "answer": output.answer,
        "cognition_score": output.cognition_score,
        "consistency": output.consistency,
        "adaptability": output.adaptability,
        "score_parts": output.score_parts,
        "model_confidence": output.model_confidence,
        "head_confidence": output.head_confidence,
        "sample_group": None if output.sample_group is None else str(output.sample_group),
        "model_version": None if output.model_version is None else output.model_version.name,
        "latency_ms": output.latency_ms,
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
        "created_at": _DATETIME.to_representation(output.created_at),
    }


class SampleGroupSerializer(serializers.Serializer):
    """A sample group: answers to one prompt sampled together, with the majority's answer."""

    class SampleSerializer(serializers.ModelSerializer):
        id = serializers.UUIDField(source="uuid")
        text = serializers.CharField(source="raw_text")
        agreement = serializers.SerializerMethodField(
            help_text="share of the group's other samples whose final answer equals this one's"
        )
        is_majority = serializers.SerializerMethodField()

        class Meta:
            model = Output
            fields = [
                "id",
                "text",
                "answer",
                "cognition_score",
                "consistency",
                "adaptability",
                "agreement",
                "is_majority",
                "model_confidence",
                "head_confidence",
                "latency_ms",
                "completion_tokens",
            ]

        def get_agreement(self, output) -> float | None:
            return output.score_parts.get("agreement")

        def get_is_majority(self, output) -> bool:
            return self.context["group"].is_majority(output)

    sample_group = serializers.UUIDField(source="id")
    prompt = serializers.SerializerMethodField()
    n = serializers.SerializerMethodField()
    majority_answer = serializers.CharField(
        allow_null=True,
        help_text="the normalised final answer more samples give than any other (at least two); "
        "null on a tie",
    )
    model_version = serializers.SerializerMethodField()
    outputs = serializers.SerializerMethodField()

    def get_prompt(self, group) -> str:
        return group.outputs[0].prompt

    def get_n(self, group) -> int:
        return len(group.outputs)

    def get_model_version(self, group) -> str | None:
        version = group.outputs[0].model_version
        return version.name if version else None

    @extend_schema_field(SampleSerializer(many=True))
    def get_outputs(self, group) -> list:
        return self.SampleSerializer(group.outputs, many=True, context={"group": group}).data


def _sample_group_response(group) -> Response:
    return Response(SampleGroupSerializer(group).data, status=status.HTTP_201_CREATED)


# The 201 answer for one output. Request examples are request_only: without it
# drf-spectacular shows a request body as the response example too.
OUTPUT_EXAMPLE = OpenApiExample(
    "an output (n = 1)",
    value={
        "id": "0b6f9a52-3c1e-4d7a-8f2b-5e4c3d2a1b0f",
        "prompt": "Start with 40. Take away 7. What is the result?",
        "raw_text": "Step 1 [deduction]: 40 - 7 = 33\n</think>\n\nThe answer is 33.",
        "reasoning": "Step 1 [deduction]: 40 - 7 = 33",
        "steps": [
            {
                "index": 1,
                "text": "40 - 7 = 33",
                "strategy": "deduction",
                "strategy_source": "explicit",
                "self_correction": False,
                "wrong": False,
            }
        ],
        "answer": "The answer is 33.",
        "cognition_score": 0.794,
        "consistency": 0.99,
        "adaptability": 0.5,
        "score_parts": {
            "cognition_score": 0.794,
            "consistency": 0.99,
            "adaptability": 0.5,
            "claim_accuracy": 1.0,
            "checkable_claims": 1,
            "wrong_claims": 0,
            "model_confidence": 0.97,
            "wrong_steps": [],
        },
        "model_confidence": 0.97,
        "head_confidence": None,
        "sample_group": None,
        "model_version": "cogloop_tiny-base",
        "latency_ms": 210,
        "prompt_tokens": 18,
        "completion_tokens": 24,
        "created_at": "2026-03-04T14:50:12.345678Z",
    },
    response_only=True,
    status_codes=["201"],
)

OUTPUT_OR_GROUP = PolymorphicProxySerializer(
    component_name="OutputOrSampleGroup",
    serializers=[OutputSerializer, SampleGroupSerializer],
    resource_type_field_name=None,
)


def _check_prompt_size(prompt: str) -> None:
    limit = settings.COGLOOP["MAX_PROMPT_CHARS"]
    if len(prompt) > limit:
        raise ApplicationError(
            f"prompt is {len(prompt)} characters; the limit is {limit}",
            code="prompt_too_long",
            status=413,
            extra={"fields": {"prompt": [f"at most {limit} characters"]}, "limit": limit},
        )


def _validated_prompt_body(serializer_class, request) -> dict:
    """An over-long prompt is a 413 naming the limit; every other problem a 400 naming the field.
    (A body over Django's size limit is a 413 too: cogloop.api's handler.)"""
    body = request.data
    if isinstance(body, dict) and isinstance(body.get("prompt"), str):
        _check_prompt_size(body["prompt"])
    data = serializer_class(data=body)
    data.is_valid(raise_exception=True)
    return data.validated_data


MAX_IDEMPOTENCY_KEY_CHARS = 200


def idempotency_key_of(request, validated: dict) -> str | None:
    """The request's key: the Idempotency-Key header, else the body's (validated already).

    The header is checked here, before anything runs, as the body's field is by its
    serializer: one the column cannot hold was a 500 after the model had run.
    """
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return validated.get("idempotency_key")
    key = header.strip()
    problem = None
    if not key:
        problem = "must not be blank"
    elif len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        problem = f"at most {MAX_IDEMPOTENCY_KEY_CHARS} characters, not {len(key)}"
    elif not key.isprintable():
        problem = "printable characters only"
    if problem:
        raise ApplicationError(
            f"the Idempotency-Key header is invalid: {problem}",
            code="validation_error",
            extra={"fields": {"Idempotency-Key": [problem]}},
        )
    return key


def _request_hash(validated: dict) -> str:
    """What a replay under the same key must match: the validated request, less its key."""
    return services.request_hash({k: v for k, v in validated.items() if k != "idempotency_key"})


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


LOGPROBS_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "OpenAI's per-answer `logprobs`: the answer's tokens in order with their natural "
    "log-probabilities (other keys, such as top_logprobs, are ignored). They give the output's "
    "model_confidence.",
    "properties": {
        "content": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"token": {"type": "string"}, "logprob": {"type": "number", "maximum": 0}},
                "required": ["token", "logprob"],
            },
        }
    },
    "required": ["content"],
}


@extend_schema_field(LOGPROBS_SCHEMA)
class LogprobsField(serializers.Field):
    """``{"content": [{"token": str, "logprob": number <= 0}, ...]}`` -> (tokens, logprobs).

    Read with plain loops, not a nested serializer: an R1 answer is thousands of tokens.
    """

    def to_internal_value(self, data):
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise serializers.ValidationError('expected {"content": [{"token": ..., "logprob": ...}, ...]}')
        content = data["content"]
        limit = settings.COGLOOP["MAX_OUTPUT_CHARS"]
        if len(content) > limit:
            raise serializers.ValidationError(f"at most {limit} tokens")
        tokens, logprobs = [], []
        for i, item in enumerate(content):
            token = item.get("token") if isinstance(item, dict) else None
            logprob = item.get("logprob") if isinstance(item, dict) else None
            if not isinstance(token, str):
                raise serializers.ValidationError(f"content[{i}]: token must be a string")
            if (
                isinstance(logprob, bool)
                or not isinstance(logprob, int | float)
                or not math.isfinite(logprob)
                or logprob > 0
            ):
                raise serializers.ValidationError(f"content[{i}]: logprob must be a number <= 0")
            tokens.append(token)
            logprobs.append(float(logprob))
        return tokens, logprobs

    def to_representation(self, value):
        tokens, logprobs = value
        return {"content": [{"token": t, "logprob": lp} for t, lp in zip(tokens, logprobs)]}


def _check_output_size(value: str) -> str:
    limit = settings.COGLOOP["MAX_OUTPUT_CHARS"]
    if len(value) > limit:
        raise serializers.ValidationError(f"at most {limit} characters")
    return value


# R1's recommended sampling, used for sample groups when the request names no temperature.
SAMPLING_TEMPERATURE = 0.6
SAMPLING_TOP_P = 0.95


class GenerateApi(AppApi):
    class GenerateInputSerializer(serializers.Serializer):
        prompt = StrictCharField(trim_whitespace=True)
        max_new_tokens = serializers.IntegerField(required=False, min_value=1)
        temperature = serializers.FloatField(
            required=False,
            min_value=0.0,
            max_value=2.0,
            help_text=f"0 (greedy) by default; {SAMPLING_TEMPERATURE} with top_p {SAMPLING_TOP_P} when n > 1",
        )
        n = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=services.MAX_SAMPLES,
            help_text="answers to sample in one batch and store as a sample group (default: the "
            "GENERATE_DEFAULT_N setting, which applies only when the request does not ask for "
            "temperature 0: greedy samples would all be one answer)",
        )
        idempotency_key = serializers.CharField(required=False, max_length=200)

        def validate_max_new_tokens(self, value):
            limit = settings.COGLOOP["MAX_NEW_TOKENS_LIMIT"]
            if value > limit:
                raise serializers.ValidationError(f"at most {limit}")
            return value

        def validate(self, data):
            if "n" not in data:
                greedy = data.get("temperature") == 0
                data["n"] = 1 if greedy else settings.COGLOOP["GENERATE_DEFAULT_N"]
            if data["n"] > 1 and data.get("temperature") == 0:
                raise serializers.ValidationError(
                    {"temperature": ["n > 1 samples need a temperature above 0 (greedy answers are all one)"]}
                )
            return data

    @extend_schema(
        request=GenerateInputSerializer,
        responses={
            201: OpenApiResponse(OUTPUT_OR_GROUP, description="an Output (n = 1) or a sample group"),
            **error_responses(400, 401, 409, 413, 429),
        },
        examples=[
            OpenApiExample(
                "chain",
                value={"prompt": "Start with 40. Take away 7. What is the result?"},
                request_only=True,
            ),
            OUTPUT_EXAMPLE,
            OpenApiExample(
                "self-consistency",
                value={"prompt": "Start with 40. Take away 7. What is the result?", "n": 3},
                request_only=True,
            ),
            OpenApiExample(
                "sample group",
                value={
                    "sample_group": "6f1c2a4e-7d5b-4a8e-9c3f-2b1d0e9a8c7b",
                    "prompt": "Start with 40. Take away 7. What is the result?",
                    "n": 3,
                    "majority_answer": "33",
                    "model_version": "cogloop_tiny-base",
                    "outputs": [
                        {
                            "id": "0b6f9a52-3c1e-4d7a-8f2b-5e4c3d2a1b0f",
                            "text": "Step 1 [deduction]: 40 - 7 = 33\n</think>\n\nThe answer is 33.",
                            "answer": "The answer is 33.",
                            "cognition_score": 0.8,
                            "consistency": 1.0,
                            "adaptability": 0.5,
                            "agreement": 0.5,
                            "is_majority": True,
                            "model_confidence": 0.97,
                            "head_confidence": None,
                            "latency_ms": 210,
                            "completion_tokens": 24,
                        }
                    ],
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
        description="Generate with the serving model; the answer is split into steps and scored. With "
        "n > 1, n answers are sampled together (temperature 0.6, top_p 0.95 unless the request sets "
        "temperature), stored as one sample group, each scored with its agreement with the others, "
        "and the response is the group with its majority answer.",
    )
    def post(self, request):
        v = _validated_prompt_body(self.GenerateInputSerializer, request)
        key = idempotency_key_of(request, v)
        # The hash covers what the model is asked, defaults filled in: leaving out a default
        # and stating it are one request.
        asked = {
            "prompt": v["prompt"],
            "n": v["n"],
            "max_new_tokens": v.get("max_new_tokens", settings.COGLOOP["DEFAULT_MAX_NEW_TOKENS"]),
            "temperature": v.get("temperature", SAMPLING_TEMPERATURE if v["n"] > 1 else 0.0),
        }
        if v["n"] > 1:
            group = services.output_group_generate(
                app=self.app,
                prompt=asked["prompt"],
                n=asked["n"],
                max_new_tokens=asked["max_new_tokens"],
                temperature=asked["temperature"],
                top_p=SAMPLING_TOP_P,
                idempotency_key=key,
                request_hash=_request_hash(asked),
            )
            return _sample_group_response(group)
        output = services.output_generate(
            app=self.app,
            prompt=asked["prompt"],
            max_new_tokens=asked["max_new_tokens"],
            temperature=asked["temperature"],
            idempotency_key=key,
            request_hash=_request_hash(asked),
        )
        return Response(OutputSerializer(output).data, status=status.HTTP_201_CREATED)


class OutputCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = "-id"

    def decode_cursor(self, request):
        """DRF's, with a cursor it did not make a 400: its position must be an id (DRF passed
        any text on to the query, a 500) and an undecodable one is the client's error, not a
        missing page (DRF's 404)."""
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                int(cursor.position)
        except (NotFound, ValueError):
            raise ApplicationError(
                "the cursor is not one this API gave; follow the `next` or `previous` link",
                code="invalid_cursor",
                extra={"fields": {"cursor": ["not a cursor this API gave"]}},
            ) from None
        return cursor


class OutputsApi(AppApi):
    """GET lists the caller's outputs; POST scores an answer produced elsewhere."""

    class ExternalOutputInputSerializer(serializers.Serializer):
        prompt = StrictCharField(trim_whitespace=True)
        text = StrictCharField(
            required=False,
            trim_whitespace=False,
            help_text="the model's raw output, reasoning and answer (or give `samples`)",
        )
        logprobs = LogprobsField(required=False, allow_null=True)
        samples = serializers.ListField(
            child=StrictCharField(trim_whitespace=False),
            required=False,
            min_length=2,
            max_length=services.MAX_SAMPLES,
            error_messages={
                "min_length": f"a sample group holds 2 to {services.MAX_SAMPLES} samples; send one answer as `text`",
                "max_length": "a sample group holds at most {max_length} samples",
            },
            help_text=f"2 to {services.MAX_SAMPLES} raw answers to the same prompt (what an "
            "OpenAI-compatible server returns for n), stored as one sample group",
        )
        sample_logprobs = serializers.ListField(
            child=LogprobsField(allow_null=True),
            required=False,
            help_text="with `samples`: one `logprobs` object (or null) per sample, in the same order",
        )
        idempotency_key = StrictCharField(required=False, max_length=200)
        model_version = StrictCharField(
            required=False,
            allow_null=True,
            max_length=100,
            help_text="the registered model version that made the answer, by name (GET /v1/models "
            "lists the active one); an inference process serving that version with a trained head "
            "reads the answer and records its head_confidence",
        )

        def validate_text(self, value):
            return _check_output_size(value)

        def validate_samples(self, value):
            limit = settings.COGLOOP["MAX_OUTPUT_CHARS"]
            too_long = {
                str(i): [f"at most {limit} characters"] for i, t in enumerate(value) if len(t) > limit
            }
            if too_long:
                raise serializers.ValidationError(too_long)
            return value

        def validate(self, data):
            errors = {}
            if "text" in data and "samples" in data:
                errors["samples"] = ["give one answer as `text` or several as `samples`, not both"]
            elif "text" not in data and "samples" not in data:
                errors["text"] = ["This field is required (or give several answers as `samples`)."]
            if data.get("logprobs") is not None and "samples" in data:
                errors["logprobs"] = ["with `samples`, give `sample_logprobs`, one per sample"]
            if "sample_logprobs" in data:
                if "samples" not in data:
                    errors["sample_logprobs"] = ["only with `samples`; one answer's go in `logprobs`"]
                elif len(data["sample_logprobs"]) != len(data["samples"]):
                    errors["sample_logprobs"] = [
                        f"one entry per sample ({len(data['samples'])}), not {len(data['sample_logprobs'])}"
                    ]
            if errors:
                raise serializers.ValidationError(errors)
            return data

    @extend_schema(
        request=ExternalOutputInputSerializer,
        responses={
            201: OpenApiResponse(OUTPUT_OR_GROUP, description="an Output (text) or a sample group"),
            **error_responses(400, 401, 409, 413, 429),
        },
        examples=[
            OpenApiExample(
                "made with vLLM",
                value={
                    "prompt": "Start with 40. Take away 7. What is the result?",
                    "text": "Step 1 [deduction]: 40 - 7 = 33\n</think>\n\nThe answer is 33.",
                    "model_version": "cogloop_tiny-base",
                },
                request_only=True,
            ),
            OUTPUT_EXAMPLE,
            OpenApiExample(
                "with log-probabilities",
                value={
                    "prompt": "Start with 40. Take away 7. What is the result?",
                    "text": "40 - 7 = 33\n</think>\n\nThe answer is 33.",
                    "logprobs": {
                        "content": [
                            {"token": "40", "logprob": -0.02},
                            {"token": " -", "logprob": -0.01},
                            {"token": " 7", "logprob": 0.0},
                            {"token": " =", "logprob": 0.0},
                            {"token": " 33", "logprob": -0.3},
                            {"token": "\n", "logprob": 0.0},
                            {"token": "</think>", "logprob": -0.05},
                            {"token": "\n\n", "logprob": 0.0},
                            {"token": "The", "logprob": -0.1},
                            {"token": " answer", "logprob": 0.0},
                            {"token": " is", "logprob": 0.0},
                            {"token": " 33", "logprob": -0.12},
                            {"token": ".", "logprob": 0.0},
                        ]
                    },
                },
                request_only=True,
            ),
            OpenApiExample(
                "a sample group (n = 3)",
                value={
                    "prompt": "A pen costs $6. How much do 3 pens cost?",
                    "samples": [
                        "3 * 6 = 18\n</think>\n\nThe answer is $18.00.",
                        "6 + 6 + 6 = 18\n</think>\n\n\\boxed{18}",
                        "3 * 6 = 24\n</think>\n\nThe answer is 24 dollars.",
                    ],
                    "sample_logprobs": [
                        {"content": [{"token": "3", "logprob": -0.2}, {"token": " *", "logprob": -0.01}]},
                        None,
                        None,
                    ],
                },
                request_only=True,
            ),
        ],
        description="Score an answer generated elsewhere (vLLM, another host): same parsing, same score, "
        "same capture policy. `samples` stores 2 to 16 answers to one prompt as a sample group, each "
        "scored with its agreement with the others; the response is then the group. `logprobs` (or "
        "`sample_logprobs`) in OpenAI's shape give each answer's model_confidence. `model_version` names "
        "the registered version that made the answer (an unknown name is a 400); an inference process "
        "that serves that version with a trained metacognition head reads the answer in one prefill and "
        "records its head_confidence (a web process, which holds no model, records none).",
    )
    def post(self, request):
        v = _validated_prompt_body(self.ExternalOutputInputSerializer, request)
        if v.get("model_version") is None:  # null and absent are one request
            v.pop("model_version", None)
        key, body_hash = idempotency_key_of(request, v), _request_hash(v)
        version = services.model_version_by_name(name=v["model_version"]) if "model_version" in v else None
        if "samples" in v:
            logprobs = v.get("sample_logprobs") or [None] * len(v["samples"])
            group = services.output_external_group_create(
                app=self.app,
                prompt=v["prompt"],
                samples=[
                    services.SampleText(raw_text=text, model_confidence=services.logprob_confidence(lp))
                    for text, lp in zip(v["samples"], logprobs)
                ],
                model_version=version,
                idempotency_key=key,
                request_hash=body_hash,
            )
            return _sample_group_response(group)
        output = services.output_external_create(
            app=self.app,
            prompt=v["prompt"],
            raw_text=v["text"],
            model_version=version,
            idempotency_key=key,
            request_hash=body_hash,
            model_confidence=services.logprob_confidence(v.get("logprobs")),
        )
        return Response(output_body(output), status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: OutputSerializer(many=True), **error_responses(400, 401, 429)},
        description="The caller's outputs, newest first, cursor-paginated.",
    )
    def get(self, request):
        queryset = Output.objects.filter(app=self.app).select_related("model_version")
        paginator = OutputCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(OutputSerializer(page, many=True).data)


class OutputDetailApi(AppApi):
    @extend_schema(
        responses={200: OutputSerializer, **error_responses(401, 404, 429)},
        description="One of the caller's outputs (another app's is a 404).",
    )
    def get(self, request, output_id):
        output = get_object_or_404(
            Output.objects.select_related("model_version"), uuid=output_id, app=self.app
        )
        return Response(OutputSerializer(output).data)


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "name", "status", "recipe", "sha256", "promoted_at", "promotion_history", "metrics"]


class ModelVersionPromoteApi(APIView):
    """Admin only (a staff session or HTTP basic auth of a staff user)."""

    authentication_classes = [SessionAuthentication, LockoutAwareBasicAuthentication, RefuseApiKeys]
    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={
            200: ModelVersionSerializer,
            202: ModelVersionSerializer,
            **error_responses(401, 403, 404, 409, 429),
        },
        description="Make this version the one every serving process answers with. 200 when this "
        "process verified and promoted it; 202 from the web role, which loads no model: a worker "
        "verifies it and promotes it (or marks it rejected with the reason).",
    )
    def post(self, request, version_id):
        version = get_object_or_404(ModelVersion, pk=version_id)
        version = services.model_version_promote(
            version=version, reason=f"promoted by {request.user.username}"
        )
        return _promotion_response(version)


class ModelVersionRollbackApi(ModelVersionPromoteApi):
    @extend_schema(
        request=None,
        responses={
            200: ModelVersionSerializer,
            202: ModelVersionSerializer,
            **error_responses(401, 403, 404, 409, 429),
        },
        description="Put back the version this one replaced (this one must be active); 202 when "
        "a worker verifies it first (see promote).",
    )
    def post(self, request, version_id):
        version = get_object_or_404(ModelVersion, pk=version_id)
        previous = services.model_version_rollback(version=version, by=request.user.username)
        return _promotion_response(previous)


def _promotion_response(version: ModelVersion) -> Response:
    queued = version.status != ModelVersion.Status.ACTIVE
    return Response(ModelVersionSerializer(version).data, status=202 if queued else 200)
