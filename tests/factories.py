"""Test data builders, in one place (factory_boy).

Public-schema rows (users, memberships) are made anywhere; inventory rows (items, locations, lots)
in the tenant schema the connection is set to (`schema_context`, or the `in_acme` fixture).
Ledger rows are never inserted by a factory: `LedgerRowFactory` builds the dict the posting
service takes, so the trigger and the validation run as in production (`post_rows`).
"""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory, Password

from inventory.models import Item, Location, Lot
from tenants.models import Membership

PASSWORD = "test-pass-12345"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    class Params:
        superuser = factory.Trait(is_staff=True, is_superuser=True)

    username = factory.Sequence(lambda n: f"user-{n}")
    password = Password(PASSWORD)


class MembershipFactory(DjangoModelFactory):
    """Through the service (membership_grant), which checks the role."""

    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Membership.Role.OWNER

    @classmethod
    def _create(cls, model_class, *, user, organization, role):
        from tenants.services import membership_grant

        return membership_grant(user=user, organization=organization, role=role)


class ItemFactory(DjangoModelFactory):
    class Meta:
        model = Item

    sku = factory.Sequence(lambda n: f"F-{n:04d}")
    name = factory.Sequence(lambda n: f"Test item {n}")
    unit = "g"


class LocationFactory(DjangoModelFactory):
    class Meta:
        model = Location

    code = factory.Sequence(lambda n: f"F-LOC-{n}")
    name = factory.Sequence(lambda n: f"Location {n}")


class LotFactory(DjangoModelFactory):
    class Meta:
        model = Lot

    item = factory.SubFactory(ItemFactory)
    code = factory.Sequence(lambda n: f"F-LOT-{n}")


class LedgerRowFactory(factory.DictFactory):
    """One entry as the API and the posting service take it (item and location are codes)."""

    item = factory.LazyFunction(lambda: ItemFactory().sku)
    location = factory.LazyFunction(lambda: LocationFactory().code)
    qty = "5"
    kind = "receipt"


def make_user(username: str, *, org=None, role=None, superuser: bool = False):
    user = UserFactory(username=username, superuser=superuser)
    if org is not None:
        MembershipFactory(user=user, organization=org, role=role)
    return user


def make_catalog(*, items: int = 5, locations: int = 3, lots_per_item: int = 2, prefix: str = "T"):
    """Items, locations and lots in the current schema, three INSERTs whatever the sizes."""
    item_objs = Item.objects.bulk_create(
        [ItemFactory.build(sku=f"{prefix}-{n:04d}", name=f"Test item {n}") for n in range(items)]
    )
    loc_objs = Location.objects.bulk_create(
        [
            LocationFactory.build(code=f"{prefix}-LOC-{n}", name=f"Location {n}")
            for n in range(locations)
        ]
    )
    lot_objs = Lot.objects.bulk_create(
        [
            LotFactory.build(item=i, code=f"{prefix}-LOT-{i.id}-{k}")
            for i in item_objs
            for k in range(lots_per_item)
        ]
    )
    return item_objs, loc_objs, lot_objs


def post_rows(schema: str, entries: list[dict]):
    """Post `entries` (dicts, e.g. LedgerRowFactory's) to `schema` through the posting service."""
    from django_tenants.utils import schema_context

    from inventory.services.posting import ledger_entries_create

    with schema_context(schema):
        return ledger_entries_create(entries=entries)
