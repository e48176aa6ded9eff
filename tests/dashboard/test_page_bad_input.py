"""Odd input from the address bar or a form is answered (a message, a 4xx, an empty result),
never with a server error."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_job_kind_is_not_reflected_as_html(as_admin, acme):
    """The 400 for an unknown runbook job echoes the kind from the URL into a text/html body."""
    response = as_admin.post("/orgs/acme/runbook/jobs/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/")
    assert response.status_code == 400
    assert b"<img" not in response.content
