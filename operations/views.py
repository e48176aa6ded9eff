from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from operations.health import health_report


@never_cache
@require_GET
def health(request):
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)
