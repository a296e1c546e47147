import pytest

from annotation import services


@pytest.fixture
def reviewer(reviewer):
    """The shared reviewer, holding the reviewer role the pages require."""
    services.user_role_grant(user=reviewer, role=services.REVIEWER)
    return reviewer


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, role: str | None = services.REVIEWER, password: str = "pass-word-1", **extra):
        user = django_user_model.objects.create_user(username=username, password=password, **extra)
        if role:
            services.user_role_grant(user=user, role=role)
        return user
    return make


@pytest.fixture
def lead(make_user):
    return make_user("lena", role=services.LEAD, password="lead-pass-1")


@pytest.fixture
def policy(db):
    """The review policy row; tests set the shares they need (the defaults route by a random draw)."""
    def set_policy(*, second: float = 0.0, double: float = 0.0, lease_minutes: int = 10):
        row = services.review_policy_get()
        row.second_review_share, row.double_annotation_share, row.lease_minutes = second, double, lease_minutes
        row.save()
        return row
    return set_policy
