"""/health answered ahead of the rest of the middleware stack."""

from __future__ import annotations

from operations.views import health

HEALTH_PATH = "/health"


class HealthProbeMiddleware:
    """Answer /health before tenant routing, sessions, CSRF and authentication: it sits right
    after SecurityMiddleware (whose headers the answer keeps) in settings.MIDDLEWARE.

    The probe holds no tenant data and answers on every host (both URL confs route it to the
    same view), so the routing query and the eight middleware below it are work that a load
    balancer probing every few seconds, or anyone else (it needs no login), should not cost:
    one statement instead of two and about a third less CPU per call (docs/PERFORMANCE.md,
    "Scale" (5)). Its answer is still read from the database on every call (operations/health.py):
    nothing is cached in a process."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == HEALTH_PATH:
            return health(request)
        return self.get_response(request)
