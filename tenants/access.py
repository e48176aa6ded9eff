"""Who may see which organisation's pages. Platform admins (superusers) see every organisation;
support staff the organisations they support; owners (and org admins) their own."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.models import Membership, Organization

OWNER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)
SUPPORT_ROLES = (Membership.Role.SUPPORT, Membership.Role.ADMIN)


def is_platform_admin(user) -> bool:
    return bool(user.is_authenticated and user.is_superuser)


def orgs_for(user, roles) -> list[Organization]:
    if is_platform_admin(user):
        return list(Organization.objects.tenants().order_by("slug"))
    if not user.is_authenticated:
        return []
    return list(
        Organization.objects.tenants()
        .filter(memberships__user=user, memberships__role__in=roles)
        .order_by("slug")
        .distinct()
    )


def roles_of(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    if user.is_superuser:
        roles.add("platform_admin")
    return roles


def org_or_404(user, slug: str, roles) -> Organization:
    """The organisation if the user may see it in one of `roles`; 404 for outsiders (its existence
    is not revealed to them), 403 with the reason for a member in another role."""
    org = Organization.objects.tenants().filter(slug=slug).first()
    if org is None:
        raise Http404("No such organisation.")
    if is_platform_admin(user):
        return org
    memberships = Membership.objects.filter(user=user, organization=org)
    role = memberships.values_list("role", flat=True).first()  # one per user and organisation
    if role is None:
        raise Http404("No such organisation.")
    if role not in roles:
        # A member knows the organisation exists: say why, rather than "No such organisation".
        wanted = " and ".join(f"{Membership.Role(r).label.lower()}s" for r in roles)
        raise PermissionDenied(
            f"Your role in {org.name} is {Membership.Role(role).label.lower()}; "
            f"this page is for its {wanted or 'platform admins'}."
        )
    return org


def page_login_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def platform_admin_required(view):
    @page_login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_platform_admin(request.user):
            raise PermissionDenied("Platform admins only.")
        return view(request, *args, **kwargs)

    return wrapper


def support_required(view):
    @page_login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (is_platform_admin(request.user) or roles_of(request.user) & set(SUPPORT_ROLES)):
            raise PermissionDenied("Support staff only.")
        return view(request, *args, **kwargs)

    return wrapper
