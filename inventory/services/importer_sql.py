"""The SQL half of `import_ledger` (inventory/services/importer.py): the staging table, the
set-wise checks, the catalog rows it creates and the one INSERT into the ledger.

The checks here are a sieve, not the judge: `SUSPECT` flags every row that *may* break a rule
of inventory/services/ledger_rows.py or of the importer's catalog rules (a superset, tight for
ordinary data), and the importer runs the very same Python checks on the flagged rows only, so
the messages stay those of the API and a good file costs no per-row Python check. Values whose
format PostgreSQL and Python might read differently (a date-only occurred_at, a week date, a
naive time outside UTC) are flagged too: Python parses them and hands the value back
(`imp_fixups`), so a row means the same whichever door it came through.
"""

from __future__ import annotations

from inventory.models import MovementKind, Unit

REQUIRED = ("sku", "location", "qty", "kind")
OPTIONAL = (
    "item_name",
    "unit",
    "location_name",
    "site",
    "lot",
    "lot_expires_on",
    "reference",
    "occurred_at",
)
COLUMNS = REQUIRED + OPTIONAL
# bad: 0 a parsed row; 1 the Python pass found a problem (NUL) but the row is still checked;
# 2 not checked further (lone surrogates, too many values): its problems are already known.
STAGING = (
    "CREATE TEMP TABLE imp_rows (line bigint NOT NULL, bad smallint NOT NULL, "
    + ", ".join(f"{c} text NOT NULL DEFAULT ''" for c in COLUMNS)
    + ") ON COMMIT DROP"
)
FIXUPS = (
    "CREATE TEMP TABLE imp_fixups (line bigint PRIMARY KEY, occurred_at timestamptz, "
    "expires_on date) ON COMMIT DROP"
)

TEMP_TABLES = ("imp_rows", "imp_fixups", "imp_skus", "imp_locations", "imp_lots")

# ASCII classes spelled out: PostgreSQL's [0-9] is by code point, as in catalog.CODE_RE.
CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
UNITS = list(Unit.values)
KINDS = list(MovementKind.values)

# The sieve is mostly shapes: translate() turns every digit into 9 and the shape is looked up
# (a hashed = ANY, about 0.1 us a row, where a regular expression cost 1-2 us), then fixed
# positions are compared as bytes (COLLATE "C"). Quantities: -?D{1,12}(.D{1,6})?, not all zeros.
QTY_SHAPES = [
    sign + "9" * whole + (("." + "9" * decimals) if decimals else "")
    for sign in ("", "-")
    for whole in range(1, 13)
    for decimals in range(7)
]
# Date-times both parsers read alike: YYYY-MM-DD, T or space, HH:MM:SS, then Z or +HH:MM /
# -HH:MM, or nothing (naive) when the default time zone is UTC (else a DST fold could be read
# differently); a year of 1900-2199 (no year-0/9999 overflow at an offset), fields in range, the
# day checked against its month. Any other form (date only, fractions, week dates...) goes to
# Python, which parses it exactly as the API would.
_STAMP = "9999-99-99{sep}99:99:99"
_ZONED = [_STAMP.format(sep=sep) + zone for sep in "T " for zone in ("Z", "+99:99", "-99:99")]
_NAIVE = [_STAMP.format(sep=sep) for sep in "T "]


def time_shapes(naive_is_utc: bool) -> list[str]:
    return _ZONED + (_NAIVE if naive_is_utc else [])


def _c(expr: str) -> str:
    return f'{expr} COLLATE "C"'


def _date_fits(col: str) -> str:
    """YYYY-MM-DD at the start of `col` (shape already checked) is a real date of 1900-2199."""
    return (
        f"{_c(f'substr({col}, 1, 4)')} BETWEEN '1900' AND '2199' "
        f"AND {_c(f'substr({col}, 6, 2)')} BETWEEN '01' AND '12' "
        f"AND {_c(f'substr({col}, 9, 2)')} BETWEEN '01' AND '31' "
        f"AND CASE WHEN {_c(f'substr({col}, 9, 2)')} <= '28' THEN true "
        f"ELSE substr({col}, 9, 2)::int <= extract(day from make_date(substr({col}, 1, 4)::int, "
        f"substr({col}, 6, 2)::int, 1) + interval '1 month - 1 day') END"
    )


# Per-row facts the checks need; joined from the three small per-code tables below.
SUMMARIES = [
    # One row per SKU: existing item (id, unit) or, for a new one, its defining line (the
    # first with a valid unit), the name and unit given there; umin/umax catch disagreeing units.
    f"""CREATE TEMP TABLE imp_skus ON COMMIT DROP AS
        SELECT s.sku, min(s.line) AS first_line,
               min(s.line) FILTER (WHERE s.unit = ANY(%(units)s)) AS def_line,
               min(s.unit) FILTER (WHERE s.unit <> '') AS umin,
               max(s.unit) FILTER (WHERE s.unit <> '') AS umax,
               NULL::bigint AS item_id, NULL::text AS item_unit,
               NULL::text AS def_unit, NULL::text AS def_name,
               s.sku ~ '{CODE_RE}' AS code_ok, NULL::boolean AS suspect
          FROM imp_rows s WHERE s.bad < 2 AND s.sku <> '' AND length(s.sku) <= 64
         GROUP BY s.sku""",
    """UPDATE imp_skus k SET item_id = i.id, item_unit = i.unit
         FROM inventory_items i WHERE i.sku = k.sku""",
    f"""CREATE TEMP TABLE imp_locations ON COMMIT DROP AS
        SELECT s.location, min(s.line) AS first_line, NULL::bigint AS location_id,
               NULL::text AS def_name, NULL::text AS def_site,
               s.location ~ '{CODE_RE}' AS code_ok, NULL::boolean AS suspect
          FROM imp_rows s WHERE s.bad < 2 AND s.location <> '' AND length(s.location) <= 64
         GROUP BY s.location""",
    """UPDATE imp_locations k SET location_id = l.id
         FROM inventory_locations l WHERE l.code = k.location""",
    f"""CREATE TEMP TABLE imp_lots ON COMMIT DROP AS
        SELECT s.sku, s.lot, min(s.line) AS first_line, NULL::bigint AS lot_id,
               NULL::text AS def_expires, s.lot ~ '{CODE_RE}' AS code_ok,
               NULL::boolean AS suspect
          FROM imp_rows s
         WHERE s.bad < 2 AND s.lot <> '' AND length(s.lot) <= 64
           AND s.sku <> '' AND length(s.sku) <= 64
         GROUP BY s.sku, s.lot""",
    """UPDATE imp_lots k SET lot_id = l.id
         FROM inventory_lots l JOIN inventory_items i ON i.id = l.item_id
        WHERE i.sku = k.sku AND l.code = k.lot""",
    # The values of each new code's defining line, in one pass over the rows.
    """UPDATE imp_skus k SET def_unit = s.unit, def_name = s.item_name
         FROM imp_rows s WHERE s.line = k.def_line AND k.item_id IS NULL""",
    """UPDATE imp_locations k SET def_name = s.location_name, def_site = s.site
         FROM imp_rows s WHERE s.line = k.first_line AND k.location_id IS NULL""",
    """UPDATE imp_lots k SET def_expires = s.lot_expires_on
         FROM imp_rows s WHERE s.line = k.first_line AND k.lot_id IS NULL""",
    # Codes whose rows the Python catalog rules must see: an existing item given another
    # unit; a new item with a bad code, no unit on its first line or two units; a new
    # location or lot with a bad code.
    """UPDATE imp_skus SET suspect = CASE
            WHEN item_id IS NOT NULL THEN umin <> item_unit OR umax <> item_unit
            ELSE NOT code_ok OR def_line IS NULL OR first_line < def_line OR umin <> umax END""",
    "UPDATE imp_locations SET suspect = location_id IS NULL AND NOT code_ok",
    "UPDATE imp_lots SET suspect = lot_id IS NULL AND NOT code_ok",
    "ANALYZE imp_skus",
    "ANALYZE imp_locations",
    "ANALYZE imp_lots",
]

# The rows the Python checks must see. Params: kinds, qty_shapes, time_shapes. CASE, not AND,
# where a cast must only see checked text (PostgreSQL may evaluate AND's operands in any order).
_TIME_ODD = (
    "(s.occurred_at <> '' AND NOT CASE "
    "WHEN translate(s.occurred_at, '0123456789', '9999999999') = ANY(%(time_shapes)s) "
    "THEN {date} AND {c12} <= '23' AND {c15} <= '59' AND {c18} <= '59' "
    "AND (length(s.occurred_at) < 25 OR ({c21} <= '15' AND {c24} <= '59')) ELSE false END)"
).format(
    date=_date_fits("s.occurred_at"),
    **{f"c{i}": _c(f"substr(s.occurred_at, {i}, 2)") for i in (12, 15, 18, 21, 24)},
)
_EXPIRY_ODD = (
    "(s.lot <> '' AND s.lot_expires_on <> '' AND NOT CASE "
    "WHEN s.lot_expires_on ~ '{re}' THEN {date} ELSE false END)"
).format(re=DATE_RE, date=_date_fits("s.lot_expires_on"))
_ROW_SUSPECT = f"""
       s.bad > 0
    OR s.sku = '' OR length(s.sku) > 64
    OR s.location = '' OR length(s.location) > 64
    OR length(s.lot) > 64
    OR translate(s.qty, '0123456789', '9999999999') <> ALL(%(qty_shapes)s)
    OR translate(s.qty, '0.-', '') = ''
    OR s.kind <> ALL(%(kinds)s)
    OR length(s.reference) > 200
    OR length(s.item_name) > 200 OR length(s.location_name) > 200 OR length(s.site) > 100
    OR {_TIME_ODD}
    OR {_EXPIRY_ODD}"""
# The codes' flags are hashed sub-plans over the small tables: nearly free when none is set.
SUSPECT = f"""({_ROW_SUSPECT}
    OR s.sku IN (SELECT sku FROM imp_skus WHERE suspect)
    OR s.location IN (SELECT location FROM imp_locations WHERE suspect)
    OR (s.sku, s.lot) IN (SELECT sku, lot FROM imp_lots WHERE suspect)
)"""
# Cursor over the suspects with what the Python checks need to judge each in context.
SUSPECTS = f"""SELECT s.line, s.bad, {", ".join("s." + c for c in COLUMNS)},
       k.item_unit, k.def_line, k.def_unit, c.location_id IS NOT NULL AS location_exists,
       t.lot_id IS NOT NULL AS lot_exists, t.first_line AS lot_first_line,
       {_TIME_ODD} AS time_odd, {_EXPIRY_ODD} AS expiry_odd
  FROM (SELECT * FROM imp_rows s WHERE {SUSPECT} OFFSET 0) s
  LEFT JOIN imp_skus k ON k.sku = s.sku
  LEFT JOIN imp_locations c ON c.location = s.location
  LEFT JOIN imp_lots t ON t.sku = s.sku AND t.lot = s.lot
 ORDER BY s.line"""

# The file's sum per key plus the balance it lands on, where the balance column cannot hold it
# (a balance table still NUMERIC(18,6)). Params: limit. trim_scale: the Python check summed
# quantities in their shortest form, so "1.50" counts as 1.5 in the message.
BALANCES_BEYOND = """
WITH sums AS (
    SELECT s.sku, s.location, s.lot, sum(trim_scale(s.qty::numeric)) AS qty,
           min(s.line) AS first_line, max(s.line) AS last_line
      FROM imp_rows s GROUP BY s.sku, s.location, s.lot
)
SELECT u.sku, u.location, u.lot, (u.qty + coalesce(b.qty_canonical, 0))::text, u.last_line
  FROM sums u
  LEFT JOIN imp_skus k ON k.sku = u.sku
  LEFT JOIN imp_locations c ON c.location = u.location
  LEFT JOIN imp_lots t ON t.sku = u.sku AND t.lot = u.lot
  LEFT JOIN inventory_balances b
         ON b.item_id = k.item_id AND b.location_id = c.location_id
        AND b.lot_id IS NOT DISTINCT FROM (CASE WHEN u.lot = '' THEN NULL ELSE t.lot_id END)
 WHERE abs(u.qty + coalesce(b.qty_canonical, 0)) >= %(limit)s
 ORDER BY u.first_line"""

# Missing catalog rows, each from its code's defining line. ON CONFLICT: an item another
# import or the API created meanwhile is used, not duplicated. Params: now.
CREATE_ITEMS = """
WITH made AS (
    INSERT INTO inventory_items (sku, name, unit, is_active, created_at)
    SELECT k.sku, left(coalesce(nullif(k.def_name, ''), k.sku), 200), k.def_unit, true, %(now)s
      FROM imp_skus k WHERE k.item_id IS NULL ORDER BY k.sku
    ON CONFLICT (sku) DO NOTHING
    RETURNING id, sku
)
UPDATE imp_skus k SET item_id = made.id FROM made WHERE made.sku = k.sku"""
CREATE_LOCATIONS = """
WITH made AS (
    INSERT INTO inventory_locations (code, name, site, is_active)
    SELECT c.location, left(coalesce(nullif(c.def_name, ''), c.location), 200),
           left(c.def_site, 100), true
      FROM imp_locations c WHERE c.location_id IS NULL ORDER BY c.location
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code
)
UPDATE imp_locations c SET location_id = made.id FROM made WHERE made.code = c.location"""
CREATE_LOTS = f"""
WITH made AS (
    INSERT INTO inventory_lots (item_id, code, expires_on)
    SELECT k.item_id, t.lot,
           CASE WHEN f.expires_on IS NOT NULL THEN f.expires_on
                WHEN t.def_expires ~ '{DATE_RE}' THEN t.def_expires::date END
      FROM imp_lots t JOIN imp_skus k ON k.sku = t.sku
      LEFT JOIN imp_fixups f ON f.line = t.first_line
     WHERE t.lot_id IS NULL ORDER BY k.item_id, t.lot
    ON CONFLICT (item_id, code) DO NOTHING
    RETURNING id, item_id, code
)
UPDATE imp_lots t SET lot_id = made.id
  FROM made JOIN imp_skus k ON k.item_id = made.item_id
 WHERE k.sku = t.sku AND made.code = t.lot"""
# Codes someone else created between our look-up and our insert (ON CONFLICT skipped them).
RESOLVE_LEFTOVERS = [
    """UPDATE imp_skus k SET item_id = i.id FROM inventory_items i
        WHERE k.item_id IS NULL AND i.sku = k.sku""",
    """UPDATE imp_locations c SET location_id = l.id FROM inventory_locations l
        WHERE c.location_id IS NULL AND l.code = c.location""",
    """UPDATE imp_lots t SET lot_id = l.id
         FROM inventory_lots l JOIN imp_skus k ON k.item_id = l.item_id
        WHERE t.lot_id IS NULL AND k.sku = t.sku AND l.code = t.lot""",
]

# The ledger rows: one statement, so the balance trigger runs once (one upsert per key).
# Ordered by item, then file line: each item's and each key's rows keep the file's order, and
# the (item, ...) indexes are filled item by item instead of at random places (several times
# faster once the indexes outgrow shared_buffers). A naive occurred_at here is one the checks
# let through as UTC (the importer sets the transaction's time zone to UTC). Params: now (an empty occurred_at, as the
# API's "now"), recorded_at, recorded_by, posting.
_LEDGER_SELECT = """
SELECT {id}k.item_id, c.location_id, CASE WHEN s.lot <> '' THEN t.lot_id END, s.qty::numeric,
       s.kind, s.reference,
       CASE WHEN s.occurred_at = '' THEN %(now)s
            WHEN f.occurred_at IS NOT NULL THEN f.occurred_at
            ELSE s.occurred_at::timestamptz END,
       %(recorded_at)s, %(recorded_by)s, %(posting)s
  FROM imp_rows s
  JOIN imp_skus k ON k.sku = s.sku
  JOIN imp_locations c ON c.location = s.location
  LEFT JOIN imp_lots t ON t.sku = s.sku AND t.lot = s.lot
  LEFT JOIN imp_fixups f ON f.line = s.line"""
_LEDGER_COLUMNS = """item_id, location_id, lot_id, qty_canonical, kind, reference,
                              occurred_at, recorded_at, recorded_by, posting_id"""
INSERT_LEDGER = (
    f"INSERT INTO inventory_ledger ({_LEDGER_COLUMNS})"
    + _LEDGER_SELECT.format(id="")
    + "\n ORDER BY k.item_id, s.line"
)
# The bulk load (inventory/services/ledger_bulk_load.py) writes without the secondary indexes,
# so nothing is gained by writing item by item: ids are given in the file's order from a block
# reserved under the ledger's lock (ledger_ids_reserve; Params: id_base), and the rows go in
# the order the joins produce them, with no sort of the file (0.9 s of 4.3 s for 10^6 rows).
INSERT_LEDGER_BULK = (
    f"INSERT INTO inventory_ledger (id, {_LEDGER_COLUMNS})"
    + _LEDGER_SELECT.format(id="%(id_base)s + s.line, ")
)
