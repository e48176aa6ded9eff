"""Test data builders, in one place."""

from __future__ import annotations

from django.contrib.auth import get_user_model

PASSWORD = "test-pass-12345"


def make_user(username: str, *, org=None, role=None, superuser: bool = False):
    from tenants.services import membership_grant

    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=superuser, is_superuser=superuser
    )
    if org is not None:
        membership_grant(user=user, organization=org, role=role)
    return user
