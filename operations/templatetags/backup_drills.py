"""`{% backup_drills %}`: the backups page's off-site copies, restore drills and restore-one-
organisation form, rendered by this app (templates/operations/_drills.html)."""

from django import template

from operations.models import BackupRecord, RestoreDrill

register = template.Library()


@register.inclusion_tag("operations/_drills.html", takes_context=True)
def backup_drills(context):
    from tenants.models import Organization

    return {
        "request": context.get("request"),
        "csrf_token": context.get("csrf_token"),
        "drills": list(RestoreDrill.objects.order_by("-started_at")[:10]),
        "remote": list(
            BackupRecord.objects.exclude(remote_status="").order_by("-started_at")[:10]
        ),
        "good": list(BackupRecord.objects.filter(status="ok").order_by("-started_at")[:20]),
        "orgs": list(Organization.objects.tenants().order_by("slug").values_list("slug", flat=True)),
    }
