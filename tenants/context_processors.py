"""Navigation by role: each user sees links only to pages they may open."""

from tenants.access import OWNER_ROLES, SUPPORT_ROLES, is_platform_admin, orgs_for


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def load():
        admin = is_platform_admin(user)
        return {
            "admin": admin,
            "support": admin or bool(orgs_for(user, SUPPORT_ROLES)),
            "owned": orgs_for(user, OWNER_ROLES),
        }

    from django.utils.functional import SimpleLazyObject

    return {"nav": SimpleLazyObject(load)}
