"""List pages read a fixed number of queries however many rows they show (no N+1), within an
absolute budget per page (session, user, routing, memberships and the page's own reads)."""

from __future__ import annotations

import pytest

from tenants.services import api_key_issue
from tests.page_helpers import assert_same, queries_for

pytestmark = pytest.mark.django_db


def test_the_api_keys_page_does_not_grow_with_keys(as_acme_owner, acme_owner, acme):
    api_key_issue(organization=acme, label="key 0", created_by=acme_owner)
    small = queries_for(as_acme_owner, "/orgs/acme/api-keys/")
    for n in range(1, 8):
        api_key_issue(organization=acme, label=f"key {n}", created_by=acme_owner)
    large = queries_for(as_acme_owner, "/orgs/acme/api-keys/")
    assert as_acme_owner.get("/orgs/acme/api-keys/").content.decode().count("data-prefix=") == 8
    assert_same(small, large, budget=8)
