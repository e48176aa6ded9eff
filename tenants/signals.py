"""Drop the routing cache whenever what it holds changes (and again at commit, so a lookup made
between the write and the commit cannot keep the old value)."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tenants.models import ApiKey, Domain, Organization
from tenants.selectors import routing_cache_invalidate


@receiver([post_save, post_delete], sender=Organization)
@receiver([post_save, post_delete], sender=Domain)
@receiver([post_save, post_delete], sender=ApiKey)
def _invalidate_routing_cache(sender, **kwargs) -> None:
    routing_cache_invalidate()
    transaction.on_commit(routing_cache_invalidate)
