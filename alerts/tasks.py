"""django-q2 entry points: the minute's evaluation and one delivery attempt (queued on commit)."""

from __future__ import annotations

from alerts.services import alerts_evaluate, delivery_attempt


def evaluate_alerts() -> str:
    return alerts_evaluate().summary()


def delivery_send(delivery_id: int) -> str:
    delivery = delivery_attempt(delivery_id=delivery_id)
    if delivery is None:
        return f"delivery {delivery_id}: gone (its channel was deleted)"
    return f"delivery {delivery.id}: {delivery.status} after {delivery.attempts} attempt(s)"
