"""Odd input from the address bar or a form is answered (a message, a 4xx, an empty result),
never with a server error."""

from __future__ import annotations

import pytest

from tenants.models import ApiKey
from tests.page_helpers import text

pytestmark = pytest.mark.django_db


NUL_REFUSED = b"NUL characters are not allowed in parameters, form fields or bodies."


def test_an_api_key_label_with_a_nul_byte_is_refused(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "scanner\x00"})
    assert response.status_code == 400 and response.content == NUL_REFUSED
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("scanner\tdock", "0009"),
        ("scanner\ndock", "000A"),
        ("\x1b[31mred", "001B"),
        ("del\x7f", "007F"),
        ("next\x85line", "0085"),
        ("invoice\u202egpj.exe", "202E"),  # right-to-left override: reads as 'invoiceexe.jpg'
        ("isolate\u2066x", "2066"),
    ],
)
def test_an_api_key_label_with_a_control_character_is_refused(label, code, as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": label})
    assert response.status_code == 400
    html = text(response)
    assert 'id="key-error"' in html and f"control characters (found U+{code})" in html
    assert 'id="raw-key"' not in html
    assert ApiKey.objects.count() == 0
