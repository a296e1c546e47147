"""The bulk endpoint's fast validator and the documented serializer give the same verdicts."""

import uuid

import pytest
from django.conf import settings

from feedback.api import FeedbackInputSerializer
from feedback.validation import validate_feedback_item

OID = str(uuid.uuid4())
CASES = [
    {"output_id": OID, "rating": 3},
    {"output_id": OID, "rating": "4"},
    {"output_id": OID, "rating": 5.0},
    {"output_id": OID, "rating": 2.5},
    {"output_id": OID, "rating": "5.0"},
    {"output_id": OID, "rating": "2.5"},
    {"output_id": OID, "rating": " 3 "},
    {"output_id": OID, "rating": 0},
    {"output_id": OID, "rating": 6},
    {"output_id": OID, "rating": True},
    {"output_id": OID, "rating": "abc"},
    {"output_id": OID, "rating": None},
    {"output_id": OID, "thumb": "up"},
    {"output_id": OID, "thumb": "down", "comment": ""},
    {"output_id": OID, "thumb": True},
    {"output_id": OID, "thumb": 1},
    {"output_id": OID, "thumb": "sideways"},
    {"output_id": OID, "rating": 3, "comment": "x" * 4000},
    {"output_id": OID, "rating": 3, "comment": "x" * 4001},
    {"output_id": OID, "rating": 3, "comment": 7},
    {"output_id": OID, "flags": ["wrong"]},
    {"output_id": OID, "flags": []},
    {"output_id": OID, "flags": "wrong"},
    {"output_id": OID, "flags": [1]},
    {"output_id": OID, "flags": ["x" * 51]},
    {"output_id": OID, "flags": ["f"] * 21},
    {"output_id": OID, "rating": 3, "idempotency_key": "k"},
    {"output_id": OID, "rating": 3, "idempotency_key": "k" * 201},
    {"output_id": OID, "rating": 3, "idempotency_key": 5},
    {"output_id": "nope", "rating": 3},
    {"output_id": 12, "rating": 3},
    {"rating": 3},
    {"output_id": OID},
    {},
]


@pytest.mark.parametrize("raw", CASES)
def test_fast_validator_agrees_with_the_serializer(raw):
    serializer = FeedbackInputSerializer(data=raw)
    ok = serializer.is_valid()
    data, errors = validate_feedback_item(raw, max_comment=settings.FEEDBACK_MAX_COMMENT_CHARS)
    assert ok == (errors is None), (raw, serializer.errors, errors)
    if ok:
        expected = dict(serializer.validated_data)
        assert data == expected
    else:
        assert set(errors) == set(serializer.errors), (raw, serializer.errors, errors)
