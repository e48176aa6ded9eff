"""An item's stock over time, for its page: the on-hand chart (per location and in total) from ONE
aggregated query whatever the range, and the running balance ("after") of each ledger row on a
page of the keyset history, exact on every page."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from inventory.charts import Chart, line_chart

RANGES = {1: "24 hours", 7: "7 days", 30: "30 days", 90: "90 days", 365: "a year"}
DEFAULT_DAYS = 30
# Hour buckets up to two days (48 points), day buckets beyond (at most 365 points).
HOURLY_UP_TO_DAYS = 2

_BUCKETS_SQL = """
SELECT l.code,
       CASE WHEN e.occurred_at < %(start)s THEN NULL
            ELSE date_trunc(%(unit)s, e.occurred_at AT TIME ZONE %(tz)s) END AS bucket,
       SUM(e.qty_canonical)
  FROM inventory_ledger e
  JOIN inventory_locations l ON l.id = e.location_id
 WHERE e.item_id = %(item)s AND e.occurred_at < %(end)s
 GROUP BY 1, 2
"""


def on_hand_chart(item_id: int, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Chart:
    """One query: each location's movements summed before the range (the opening stock) and per
    bucket inside it; the running sums are taken here. By occurred_at: the chart shows when stock
    moved, not when it was keyed in."""
    now = now or timezone.now()
    hourly = days <= HOURLY_UP_TO_DAYS
    unit, step = ("hour", timedelta(hours=1)) if hourly else ("day", timedelta(days=1))
    tz = timezone.get_current_timezone()
    local_now = timezone.localtime(now, tz).replace(tzinfo=None)
    last = local_now.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        last = last.replace(hour=0)
    count = days * 24 if hourly else days
    buckets = [last - step * i for i in range(count - 1, -1, -1)]
    start = timezone.make_aware(buckets[0], tz)
    with connection.cursor() as cur:
        cur.execute(
            _BUCKETS_SQL,
            {"start": start, "end": now, "unit": unit, "tz": str(tz), "item": item_id},
        )
        rows = cur.fetchall()
    opening: dict[str, Decimal] = {}
    deltas: dict[tuple[str, datetime], Decimal] = {}
    for code, bucket, qty in rows:
        if bucket is None:
            opening[code] = opening.get(code, Decimal(0)) + qty
        else:
            deltas[(code, bucket)] = qty
            opening.setdefault(code, Decimal(0))
    series = []
    totals = [Decimal(0)] * len(buckets)
    for code in sorted(opening):
        running = opening[code]
        values = []
        for i, b in enumerate(buckets):
            running += deltas.get((code, b), Decimal(0))
            values.append(running)
            totals[i] += running
        series.append((code, values))
    label_format = "%m-%d %H:00" if hourly else "%Y-%m-%d"
    labels = [b.strftime(label_format) for b in buckets] if series else []
    named = ([("Total", totals)] if len(series) > 1 else []) + series
    ticks = [b.strftime("%H:00" if hourly else "%m-%d") for b in buckets] if series else []
    title = f"On hand over the last {RANGES.get(days, f'{days} days')}"
    return line_chart(title, labels, named, tick_labels=ticks)


_AFTER_SQL = """
SELECT page.id,
       COALESCE(b.qty_canonical, 0) - COALESCE(page.newer, 0)
  FROM (
    SELECT e.id, e.location_id, e.lot_id,
           SUM(e.qty_canonical) OVER (
               PARTITION BY e.location_id, e.lot_id ORDER BY e.id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS newer
      FROM inventory_ledger e
     WHERE e.item_id = %(item)s AND e.id >= %(oldest)s
  ) page
  LEFT JOIN inventory_balances b
    ON b.item_id = %(item)s AND b.location_id = page.location_id
   AND b.lot_id IS NOT DISTINCT FROM page.lot_id
 WHERE page.id = ANY(%(ids)s)
"""


def running_balances(item_id: int, entry_ids: list[int]) -> dict[int, Decimal]:
    """Each row's balance at its location and lot right after it: the current balance minus the
    movements of that key newer than the row. One statement, so the balance and the ledger are
    read in the same snapshot (a posting committed in between cannot skew it). Reads only the
    rows from the page's oldest on, so the first pages are cheap."""
    if not entry_ids:
        return {}
    with connection.cursor() as cur:
        cur.execute(_AFTER_SQL, {"item": item_id, "oldest": min(entry_ids), "ids": list(entry_ids)})
        return dict(cur.fetchall())


def _day_start(day):
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def history_filtered(history, form):
    """The history's kind and date filters (dates are whole days in the user's time zone, `until`
    included). The running balance ignores them: it is the key's balance after each shown row."""
    if form.value("kind"):
        history = history.filter(kind=form.value("kind"))
    if form.value("since"):
        history = history.filter(occurred_at__gte=_day_start(form.value("since")))
    if form.value("until"):
        history = history.filter(
            occurred_at__lt=_day_start(form.value("until") + timedelta(days=1))
        )
    return history
