"""The queue filtered to one run: what an alert about that run links to."""

from __future__ import annotations

import pytest

from tests.page_helpers import open_discrepancies

pytestmark = pytest.mark.django_db


def test_it_shows_only_the_discrepancies_of_the_run_asked_for(as_admin, acme):
    first = open_discrepancies("acme", 2, prefix="R")
    second = open_discrepancies("acme", 1, prefix="S")
    assert first[0].run_id != second[0].run_id
    response = as_admin.get(f"/reconciliation/?status=open&run={first[0].run_id}")
    assert response.status_code == 200
    shown = {d.id for d in response.context["page"].object_list}
    assert shown == {d.id for d in first}
    assert f'name="run" value="{first[0].run_id}"' in response.content.decode()


@pytest.mark.parametrize("value", ["0", "-1", "1e9", "x", "9" * 30, "١"])
def test_it_refuses_a_run_that_is_no_id_with_a_400(as_admin, acme, value):
    open_discrepancies("acme", 1, prefix="T")
    response = as_admin.get("/reconciliation/", {"run": value})
    assert response.status_code == 400
    assert 'id="q-run-error"' in response.content.decode()
