"""Every page action is a POST protected by Django's CSRF check: a forged form changes nothing,
and the token the pages hand out (form field or htmx header) is accepted."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from operations.models import BackupRecord, JobRun
from tenants.models import ApiKey
from tests.factories import PASSWORD
from tests.page_helpers import open_discrepancies

pytestmark = pytest.mark.django_db


def strict_client(user) -> Client:
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def form_token(client: Client, path: str) -> str:
    html = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]


def test_forged_posts_change_nothing(admin_user, acme, acme_key, sync_jobs, backup_dir):
    [d] = open_discrepancies("acme", 1, prefix="C")
    key = ApiKey.objects.get()
    client = strict_client(admin_user)
    client.get("/fleet/")  # a session with a CSRF cookie, but the forged form has no token
    posts = [
        ("/orgs/acme/api-keys/", {"label": "forged"}),
        (f"/orgs/acme/api-keys/{key.id}/revoke/", {}),
        ("/orgs/acme/runbook/jobs/validate/", {}),
        ("/orgs/acme/runbook/rollback/", {"confirm_slug": "acme"}),
        (f"/reconciliation/{d.id}/approve/", {}),
        (f"/reconciliation/{d.id}/dismiss/", {"note": "forged"}),
        ("/reconciliation/approve/", {"ids": [d.id]}),
        ("/reconciliation/run/", {"org": "acme"}),
        ("/backups/now/", {}),
    ]
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
    d.refresh_from_db()
    key.refresh_from_db()
    assert d.status == "open" and key.revoked_at is None
    assert ApiKey.objects.count() == 1
    assert JobRun.objects.count() == 0 and BackupRecord.objects.count() == 0


def test_the_pages_token_is_accepted(acme_owner, acme):
    client = strict_client(acme_owner)
    token = form_token(client, "/orgs/acme/api-keys/")
    response = client.post("/orgs/acme/api-keys/", {"label": "real", "csrfmiddlewaretoken": token})
    # Post/redirect/get: the key is shown once on the page the redirect leads to.
    assert response.status_code == 302 and ApiKey.objects.get().label == "real"


def test_the_htmx_header_token_is_accepted(acme_support, acme, sync_jobs):
    client = strict_client(acme_support)
    html = client.get("/reconciliation/").content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', html)[1]
    response = client.post(
        "/reconciliation/run/",
        {"org": "acme", "mode": "full"},
        HTTP_HX_REQUEST="true",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200
    assert JobRun.objects.get().status == "succeeded"


@pytest.mark.parametrize("key_of", ["acme", "globex"])
def test_it_checks_csrf_on_a_session_page_post_even_with_a_valid_api_key(
    acme_owner, acme, globex, key_of
):
    from tenants.services import api_key_issue

    org = {"acme": acme, "globex": globex}[key_of]
    raw_key = api_key_issue(organization=org, label="riding along").raw_key
    client = strict_client(acme_owner)
    client.get("/orgs/acme/api-keys/")  # a session with a CSRF cookie; the forged form has no token
    response = client.post(
        "/orgs/acme/api-keys/", {"label": "forged"}, headers={"X-Api-Key": raw_key}
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(label="forged").exists()
