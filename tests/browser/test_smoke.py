import pytest

from tests.django_fixtures import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_leads_a_reviewer_to_the_queue(page, reviewer):
    browser_login(page, "rita", "review-pass-1")
    assert page.url.endswith("/review/")
    assert page.locator("h1").first.inner_text()


def test_wrong_password_stays_on_the_login_page(page, reviewer):
    browser_login(page, "rita", "wrong")
    assert "/accounts/login/" in page.url
