from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication, BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from cogloop.errors import ApplicationError
from inference import services
from inference.models import ModelVersion, Output


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


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (settings: REST_FRAMEWORK DEFAULT_THROTTLE_RATES["api_key"])."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}


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
            "model_version",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
        ]


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
    """An over-long prompt is a 413 naming the limit; every other problem a 400 naming the field."""
    if isinstance(request.data, dict) and isinstance(request.data.get("prompt"), str):
        _check_prompt_size(request.data["prompt"])
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _idempotency_key(request, validated: dict) -> str | None:
    return request.headers.get("Idempotency-Key") or validated.get("idempotency_key")


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class GenerateApi(AppApi):
    class GenerateInputSerializer(serializers.Serializer):
        prompt = StrictCharField(trim_whitespace=True)
        max_new_tokens = serializers.IntegerField(required=False, min_value=1)
        temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, default=0.0)
        idempotency_key = serializers.CharField(required=False, max_length=200)

        def validate_max_new_tokens(self, value):
            limit = settings.COGLOOP["MAX_NEW_TOKENS_LIMIT"]
            if value > limit:
                raise serializers.ValidationError(f"at most {limit}")
            return value

    @extend_schema(
        request=GenerateInputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample("chain", value={"prompt": "Start with 40. Take away 7. What is the result?"})
        ],
        description="Generate with the serving model; the answer is split into steps and scored.",
    )
    def post(self, request):
        v = _validated_prompt_body(self.GenerateInputSerializer, request)
        output = services.output_generate(
            app=self.app,
            prompt=v["prompt"],
            max_new_tokens=v.get("max_new_tokens", settings.COGLOOP["DEFAULT_MAX_NEW_TOKENS"]),
            temperature=v["temperature"],
            idempotency_key=_idempotency_key(request, v),
        )
        return Response(OutputSerializer(output).data, status=status.HTTP_201_CREATED)


class OutputCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = "-id"


class OutputsApi(AppApi):
    """GET lists the caller's outputs; POST scores an answer produced elsewhere."""

    class ExternalOutputInputSerializer(serializers.Serializer):
        prompt = StrictCharField(trim_whitespace=True)
        text = StrictCharField(
            trim_whitespace=False, help_text="the model's raw output, reasoning and answer"
        )
        idempotency_key = StrictCharField(required=False, max_length=200)

        def validate_text(self, value):
            limit = settings.COGLOOP["MAX_OUTPUT_CHARS"]
            if len(value) > limit:
                raise serializers.ValidationError(f"at most {limit} characters")
            return value

    @extend_schema(
        request=ExternalOutputInputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "made with vLLM",
                value={
                    "prompt": "Start with 40. Take away 7. What is the result?",
                    "text": "Step 1 [deduction]: 40 - 7 = 33\n</think>\n\nThe answer is 33.",
                },
            )
        ],
        description="Score an answer generated elsewhere (vLLM, another host): same parsing, same score, "
        "same capture policy.",
    )
    def post(self, request):
        v = _validated_prompt_body(self.ExternalOutputInputSerializer, request)
        output = services.output_create(
            app=self.app,
            prompt=v["prompt"],
            raw_text=v["text"],
            source=Output.Source.EXTERNAL,
            idempotency_key=_idempotency_key(request, v),
        )
        return Response(OutputSerializer(output).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: OutputSerializer(many=True)},
        description="The caller's outputs, newest first, cursor-paginated.",
    )
    def get(self, request):
        queryset = Output.objects.filter(app=self.app).select_related("model_version")
        paginator = OutputCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(OutputSerializer(page, many=True).data)


class OutputDetailApi(AppApi):
    @extend_schema(
        responses={200: OutputSerializer}, description="One of the caller's outputs (another app's is a 404)."
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

    authentication_classes = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={200: ModelVersionSerializer},
        description="Make this version the one every serving process answers with.",
    )
    def post(self, request, version_id):
        version = get_object_or_404(ModelVersion, pk=version_id)
        version = services.model_version_promote(
            version=version, reason=f"promoted by {request.user.username}"
        )
        return Response(ModelVersionSerializer(version).data)


class ModelVersionRollbackApi(ModelVersionPromoteApi):
    @extend_schema(
        request=None,
        responses={200: ModelVersionSerializer},
        description="Put back the version this one replaced (this one must be active).",
    )
    def post(self, request, version_id):
        version = get_object_or_404(ModelVersion, pk=version_id)
        previous = services.model_version_rollback(version=version, by=request.user.username)
        return Response(ModelVersionSerializer(previous).data)
