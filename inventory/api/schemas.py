"""Input and output schemas of the tenant API. Inputs are strict: a string field takes only a
string (`idempotency_key: false` or `reference: []` is a 400 naming the field, never coerced),
text refuses NUL characters and lone surrogates (PostgreSQL stores neither), quantities are
decimal strings (JSON numbers are read as exact decimals, never floats), timestamps must be real
dates with a UTC offset PostgreSQL accepts. Outputs give quantities as decimal strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    PlainValidator,
    StrictBool,
    StrictStr,
    Tag,
    WithJsonSchema,
)

from inventory.models import MovementKind, Unit
from inventory.selectors import fmt_qty
from inventory.services.ledger_rows import quantity_problem, timestamp_problem

# What the documentation promises (NUMERIC(18,6)); the check itself is ledger_rows'.
QTY_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (a lone surrogate?)") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_clean_text)]
Code = Annotated[Text, Field(min_length=1, max_length=64)]


def _quantity(raw: Any) -> Decimal:
    """A decimal string, or a JSON number (read as an exact Decimal or an int): the ledger's one
    rule (inventory/services/ledger_rows.py), checked before any query."""
    if isinstance(raw, float):  # the parser never makes floats; a caller in Python might
        raise ValueError('a quantity is a decimal string, e.g. "12.5"')
    value, problem = quantity_problem(raw)
    if problem:
        raise ValueError(problem)
    return value


QuantityIn = Annotated[
    Decimal,
    PlainValidator(_quantity),
    WithJsonSchema({"type": "string", "pattern": QTY_PATTERN, "examples": ["12.5", "-4"]}),
]


def _timestamp(raw: Any) -> datetime | None:
    """ISO 8601 text, a real date with an offset PostgreSQL accepts; "" or null: not given."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError("a date-time is ISO 8601 text, e.g. 2026-11-24T09:30:00Z")
    value, problem = timestamp_problem(raw)
    if problem:
        raise ValueError(problem)
    return value


TimestampIn = Annotated[
    datetime | None,
    PlainValidator(_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
IdempotencyKey = Annotated[Text, Field(min_length=1, max_length=200)]
Kind = Literal[tuple(MovementKind.values)]  # type: ignore[valid-type]


class StrictIn(BaseModel):
    """Bodies: unknown fields refused. Plain pydantic (ninja's Schema validates a model with
    extra="forbid" twice, and wraps every value in its ORM getter)."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Responses are built from model rows by each schema's `of()`, without validation (the
    values come from the database); pydantic-core serialises them. The live schemathesis test
    checks every response against the document."""


# --- ledger -------------------------------------------------------------------------------


class EntryIn(StrictIn):
    item: Code = Field(description="item SKU")
    location: Code = Field(description="location code")
    lot: Annotated[Text, Field(max_length=64)] | None = Field(None, description="lot code")
    qty: QuantityIn = Field(description="decimal string in the item's canonical unit")
    kind: Kind
    reference: Annotated[Text, Field(max_length=200)] = ""
    occurred_at: TimestampIn = Field(None, description="defaults to now")


class BatchIn(StrictIn):
    entries: list[EntryIn] = Field(min_length=1)
    idempotency_key: IdempotencyKey | None = None


def _posting_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "entries" in value else "entry"


PostingIn = Annotated[
    Annotated[BatchIn, Tag("batch")] | Annotated[EntryIn, Tag("entry")],
    Discriminator(_posting_shape),
]


class LedgerEntryOut(Out):
    id: int
    item: str
    location: str
    lot: str | None
    qty: str
    kind: str
    reference: str
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str
    posting_id: int | None

    @classmethod
    def of(cls, e) -> LedgerEntryOut:
        return cls.model_construct(
            id=e.id,
            item=e.item.sku,
            location=e.location.code,
            lot=e.lot.code if e.lot_id else None,
            qty=fmt_qty(e.qty_canonical),
            kind=e.kind,
            reference=e.reference,
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            recorded_by=e.recorded_by,
            posting_id=e.posting_id,
        )


class TransferIn(StrictIn):
    """One transfer: two legs, transfer_out at the source and transfer_in at the destination,
    posted together or not at all (inventory/services/transfers.py)."""

    item: Code = Field(description="item SKU")
    qty: QuantityIn = Field(description="positive decimal string, moved from -> to")
    from_location: Code = Field(description="source location code")
    to_location: Code = Field(description="destination location code")
    from_lot: Annotated[Text, Field(max_length=64)] | None = Field(None, description="lot code")
    to_lot: Annotated[Text, Field(max_length=64)] | None = Field(
        None, description="destination lot code; defaults to from_lot"
    )
    to_item: Annotated[Text, Field(max_length=64)] | None = Field(
        None, description="if given, must be item (a transfer never changes item or unit)"
    )
    reference: Annotated[Text, Field(max_length=200)] = ""
    occurred_at: TimestampIn = Field(None, description="defaults to now")
    idempotency_key: IdempotencyKey | None = None


class PostingOut(Out):
    posting_id: int
    replayed: bool = Field(description="true when a retry with the same key returned the original")
    entries: list[LedgerEntryOut]


class LedgerQuery(Schema):
    item: Code | None = None
    location: Code | None = None
    lot: Code | None = Field(None, description='a lot code, or "none" for entries without a lot')
    kind: Kind | None = None
    since: TimestampIn = Field(None, description="occurred at or after (ISO 8601)")
    until: TimestampIn = Field(None, description="occurred before (ISO 8601)")
    cursor: int | None = Field(None, ge=1, le=2**63 - 1, description="next_cursor of the last page")
    limit: int = Field(100, ge=1, le=500)


class LedgerPage(Out):
    results: list[LedgerEntryOut]
    next_cursor: int | None
    limit: int


# --- catalogue and balances ---------------------------------------------------------------


class PageQuery(Schema):
    page_size: int = Field(50, ge=1, le=200)
    page: int | None = Field(
        None, ge=1, le=10**6, description="offset page (from 1); prefer cursor"
    )
    count: bool = Field(False, description="include the total (one COUNT query)")


class CodeCursorQuery(PageQuery):
    cursor: Code | None = Field(None, description="next_cursor of the last page")


class ItemsQuery(CodeCursorQuery):
    search: Annotated[Text, Field(max_length=100)] = Field("", description="in SKU or name")


class BalancesQuery(PageQuery):
    item: Code | None = Field(None, description="item SKU")
    location: Code | None = Field(None, description="location code")
    lot: Code | None = Field(None, description='a lot code, or "none" for balances without a lot')
    cursor: int | None = Field(None, ge=1, le=2**63 - 1, description="next_cursor of the last page")
    as_of: TimestampIn = Field(
        None,
        description=(
            "balances as of this instant (ISO 8601), by occurred_at: the current balance minus "
            "the movements that occurred after it, backdated entries included; keys with no "
            "movement at or before it are left out. last_ledger_id and updated_at stay those "
            "of the current balance row."
        ),
    )


# Catalogue inputs: types here, the rules (code pattern, lengths, units, uniqueness) in the
# catalogue service, which reports every field at once; the document states the same rules.
CODE_DOC = {"pattern": r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"}
NAME_DOC = {"minLength": 1, "maxLength": 200}


class ItemIn(StrictIn):
    sku: Text = Field(description="item SKU", json_schema_extra=CODE_DOC)
    name: Text = Field(json_schema_extra=NAME_DOC)
    unit: Text = Field(description="canonical unit", json_schema_extra={"enum": list(Unit.values)})


class ItemOut(Out):
    id: int
    sku: str
    name: str
    unit: str
    active: bool

    @classmethod
    def of(cls, item) -> ItemOut:
        return cls.model_construct(
            id=item.id, sku=item.sku, name=item.name, unit=item.unit, active=item.is_active
        )


class ItemOnHandOut(ItemOut):
    on_hand: str

    @classmethod
    def of(cls, item) -> ItemOnHandOut:
        return cls.model_construct(
            id=item.id,
            sku=item.sku,
            name=item.name,
            unit=item.unit,
            active=item.is_active,
            on_hand=fmt_qty(item.on_hand),
        )


class LocationIn(StrictIn):
    code: Text = Field(description="location code", json_schema_extra=CODE_DOC)
    name: Text = Field(json_schema_extra=NAME_DOC)
    site: Text = Field("", json_schema_extra={"maxLength": 100})


class LocationOut(Out):
    id: int
    code: str
    name: str
    site: str
    active: bool

    @classmethod
    def of(cls, loc) -> LocationOut:
        return cls.model_construct(
            id=loc.id, code=loc.code, name=loc.name, site=loc.site, active=loc.is_active
        )


class BalanceOut(Out):
    item: str
    location: str
    lot: str | None
    qty: str
    unit: str
    last_ledger_id: int
    updated_at: datetime

    @classmethod
    def of(cls, b) -> BalanceOut:  # b: selectors.BalanceRow
        return cls.model_construct(
            item=b.item,
            location=b.location,
            lot=b.lot,
            qty=fmt_qty(b.qty),
            unit=b.unit,
            last_ledger_id=b.last_ledger_id,
            updated_at=b.updated_at,
        )


class PageMeta(Out):
    page: int | None = Field(description="the offset page asked for, else null")
    page_size: int
    count: int | None = Field(description="total rows, only with count=true")
    pages: int | None = Field(description="total pages, only with count=true")


class ItemsPage(PageMeta):
    next_cursor: str | None
    results: list[ItemOut]


class ItemsOnHandPage(PageMeta):
    organization: str
    next_cursor: str | None
    results: list[ItemOnHandOut]


class LocationsPage(PageMeta):
    next_cursor: str | None
    results: list[LocationOut]


class BalancesPage(PageMeta):
    next_cursor: int | None
    results: list[BalanceOut]


class PingOut(Out):
    ok: StrictBool
    organization: str


# --- errors -------------------------------------------------------------------------------


class ShortfallOut(Out):
    item: str
    location: str
    lot: str | None
    balance: str = Field(description="the balance before the refused posting")
    shortfall: str = Field(description="how much more stock the posting needed")


class ErrorBody(Out):
    code: str
    message: str
    fields: dict[str, list[str]] | None = Field(
        None, description="messages per field, e.g. entries[2].qty"
    )
    shortfalls: list[ShortfallOut] | None = Field(
        None, description="insufficient_stock (409): each key that would go below zero"
    )


class ErrorOut(Out):
    error: ErrorBody
