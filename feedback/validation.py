"""Fast validation of one feedback item, for the bulk endpoint.

The same rules as ``feedback.api.FeedbackInputSerializer`` (which documents the API and
validates single requests), written as plain Python: DRF's field machinery costs ~50 µs an
item, more than inserting it. A test holds the two to the same verdicts field by field.
"""

from __future__ import annotations

import re
import uuid

MAX_FLAGS = 20
MAX_FLAG_CHARS = 50
MAX_KEY_CHARS = 200


def _unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (DRF's CharField refuses the same, in its words).

    A NUL byte is refused by every text column and a lone surrogate cannot be encoded; both
    would fail the whole bulk's COPY instead of the one item. ``encode`` finds a surrogate in
    C, far faster than looking at each character.
    """
    if "\x00" in text:
        return "Null characters are not allowed."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"Surrogate characters are not allowed: U+{ord(text[exc.start]):X}."
    return None


def validate_feedback_item(raw: dict, *, max_comment: int) -> tuple[dict | None, dict | None]:
    """(validated data, None) or (None, {field: [messages]})."""
    errors: dict[str, list[str]] = {}
    data: dict = {}

    value = raw.get("output_id")
    if value is None:
        errors["output_id"] = ["This field is required."]
    else:
        try:
            if not isinstance(value, str):
                raise TypeError
            data["output_id"] = uuid.UUID(value)
        except (ValueError, AttributeError, TypeError):
            errors["output_id"] = ["Must be a valid UUID."]

    if raw.get("rating") is not None or "rating" in raw:
        rating = raw.get("rating")
        if isinstance(rating, bool) or rating is None:
            errors["rating"] = ["A valid integer is required."]
        else:
            try:
                if isinstance(rating, float):
                    if not rating.is_integer():
                        raise ValueError
                    as_int = int(rating)
                elif isinstance(rating, int):
                    as_int = rating
                else:  # DRF's rule: a decimal string with a zero fraction is an integer
                    as_int = int(re.sub(r"\.0*\s*$", "", str(rating).strip()))
            except (TypeError, ValueError):
                errors["rating"] = ["A valid integer is required."]
            else:
                if not 1 <= as_int <= 5:
                    errors["rating"] = ["Ensure this value is between 1 and 5."]
                else:
                    data["rating"] = as_int

    if "thumb" in raw:
        thumb = raw["thumb"]
        if isinstance(thumb, str) and thumb in ("up", "down"):
            data["thumb"] = thumb == "up"
        else:
            errors["thumb"] = [f'"{thumb}" is not a valid choice.']

    if "comment" in raw:
        comment = raw["comment"]
        if not isinstance(comment, str):
            errors["comment"] = ["Not a valid string."]
        elif len(comment) > max_comment:
            errors["comment"] = [f"Ensure this field has no more than {max_comment} characters."]
        elif problem := _unstorable(comment):
            errors["comment"] = [problem]
        else:
            data["comment"] = comment

    if "flags" in raw:
        flags = raw["flags"]
        if not isinstance(flags, list):
            errors["flags"] = ["Expected a list of items."]
        elif len(flags) > MAX_FLAGS:
            errors["flags"] = [f"Ensure this field has no more than {MAX_FLAGS} elements."]
        elif not all(isinstance(f, str) and f.strip() and len(f) <= MAX_FLAG_CHARS for f in flags):
            errors["flags"] = [f"Each flag is a non-empty string of at most {MAX_FLAG_CHARS} characters."]
        elif problems := [p for f in flags if (p := _unstorable(f))]:
            errors["flags"] = problems[:1]
        else:
            data["flags"] = [f.strip() for f in flags]

    if "idempotency_key" in raw:
        key = raw["idempotency_key"]
        if not isinstance(key, str) or not key.strip():
            errors["idempotency_key"] = ["Not a valid string."]
        elif len(key) > MAX_KEY_CHARS:
            errors["idempotency_key"] = [f"Ensure this field has no more than {MAX_KEY_CHARS} characters."]
        elif problem := _unstorable(key):
            errors["idempotency_key"] = [problem]
        else:
            data["idempotency_key"] = key.strip()

    if errors:
        return None, errors
    if data.get("rating") is None and data.get("thumb") is None and not data.get("flags"):
        return None, {"rating": ["give a rating (1-5), a thumb (up/down) or flags"]}
    return data, None
