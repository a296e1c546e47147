from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from cogloop.api import error_responses
from cogloop.errors import ApplicationError
from feedback import services
from feedback.models import Feedback
from feedback.validation import validate_feedback_item
from inference.api import AppApi, StrictCharField, idempotency_key_of


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses booleans (JSON true is not a rating of 1)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUIDField that wants the UUID's text, not an integer that happens to convert."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class FeedbackInputSerializer(serializers.Serializer):
    output_id = StrictUUIDField()
    rating = StrictIntegerField(required=False, min_value=1, max_value=5)
    thumb = serializers.ChoiceField(choices=["up", "down"], required=False)
    comment = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=settings.FEEDBACK_MAX_COMMENT_CHARS,
        trim_whitespace=False,
    )
    flags = serializers.ListField(child=StrictCharField(max_length=50), required=False, max_length=20)
    idempotency_key = StrictCharField(required=False, max_length=200)

    def validate(self, data):
        if data.get("rating") is None and data.get("thumb") is None and not data.get("flags"):
            raise serializers.ValidationError({"rating": ["give a rating (1-5), a thumb (up/down) or flags"]})
        if "thumb" in data:
            data["thumb"] = data["thumb"] == "up"
        return data


class FeedbackOutputSerializer(serializers.ModelSerializer):
    output_id = serializers.UUIDField(source="output.uuid")
    thumb = serializers.SerializerMethodField()

    class Meta:
        model = Feedback
        fields = ["id", "output_id", "rating", "thumb", "comment", "flags", "created_at"]

    def get_thumb(self, fb) -> str | None:
        return None if fb.thumb is None else ("up" if fb.thumb else "down")


_CREATED_AT = serializers.DateTimeField()


def feedback_body(fb: Feedback) -> dict:
    """FeedbackOutputSerializer(fb).data without building a ModelSerializer's fields on every
    request (half a millisecond, a tenth of a request); a test holds the two equal."""
    return {
        "id": fb.pk,
        "output_id": str(fb.output.uuid),
        "rating": fb.rating,
        "thumb": None if fb.thumb is None else ("up" if fb.thumb else "down"),
        "comment": fb.comment,
        "flags": fb.flags,
        "created_at": _CREATED_AT.to_representation(fb.created_at),
    }


def _payload(validated: dict) -> dict:
    """What the idempotency hash covers: the feedback itself, not the key."""
    return {k: (str(v) if k == "output_id" else v) for k, v in validated.items() if k != "idempotency_key"}


EXAMPLE = {
    "output_id": "3f0c7f0e-8a55-4c1b-9f43-2f6a1f1d2b7e",
    "rating": 2,
    "comment": "step 2 is wrong",
    "flags": ["wrong_answer"],
}


class FeedbackCreateApi(AppApi):
    @extend_schema(
        request=FeedbackInputSerializer,
        responses={
            201: FeedbackOutputSerializer,
            200: FeedbackOutputSerializer,
            **error_responses(400, 401, 404, 409, 413, 429),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="replays return the first result; another body is a 409",
            )
        ],
        examples=[
            OpenApiExample("rating", value=EXAMPLE),
            OpenApiExample("thumb", value={"output_id": EXAMPLE["output_id"], "thumb": "down"}),
        ],
        description="Feedback on one of the caller's outputs. 201 on create, 200 on an idempotent replay.",
    )
    def post(self, request):
        data = FeedbackInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key_of(request, data.validated_data)
        payload = _payload(data.validated_data)
        fb, created = services.feedback_create(app=self.app, data=payload, idempotency_key=key)
        response = Response(feedback_body(fb), status=status.HTTP_201_CREATED if created else 200)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response


class FeedbackBulkCreateApi(AppApi):
    @extend_schema(
        request=inline_serializer("FeedbackBulkInput", {"items": FeedbackInputSerializer(many=True)}),
        responses={
            200: inline_serializer(
                "FeedbackBulkResult",
                {
                    "created": serializers.IntegerField(),
                    "replayed": serializers.IntegerField(),
                    "errors": serializers.IntegerField(),
                    "results": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **error_responses(400, 401, 413, 429),
        },
        examples=[
            OpenApiExample("two items", value={"items": [EXAMPLE, {**EXAMPLE, "rating": 5, "flags": []}]})
        ],
        description=f"Up to {settings.FEEDBACK_BULK_MAX_ITEMS} items. Valid items are written, invalid ones "
        "reported per item (index, code, field errors); a malformed envelope writes nothing.",
    )
    def post(self, request):
        items = request.data.get("items") if isinstance(request.data, dict) else None
        limit = settings.FEEDBACK_BULK_MAX_ITEMS
        if not isinstance(items, list) or not items:
            raise ApplicationError(
                'the body must be {"items": [...]} with at least one item',
                code="validation_error",
                extra={"fields": {"items": ["a non-empty list"]}},
            )
        if len(items) > limit:
            raise ApplicationError(
                f"{len(items)} items; at most {limit} per request",
                code="too_many_items",
                status=413,
                extra={"fields": {"items": [f"at most {limit}"]}, "limit": limit},
            )
        prepared = []
        for raw in items:
            if not isinstance(raw, dict):
                prepared.append({"errors": {"non_field_errors": ["each item must be an object"]}})
                continue
            valid, errors = validate_feedback_item(raw, max_comment=settings.FEEDBACK_MAX_COMMENT_CHARS)
            if errors:
                prepared.append({"errors": errors})
            else:
                prepared.append({"data": _payload(valid), "idempotency_key": valid.get("idempotency_key")})
        results = services.feedback_create_bulk(app=self.app, items=prepared)
        counts = {k: sum(r["status"] == k for r in results) for k in ("created", "replayed", "error")}
        return Response(
            {
                "created": counts["created"],
                "replayed": counts["replayed"],
                "errors": counts["error"],
                "results": results,
            }
        )
