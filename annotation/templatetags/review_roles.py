from django import template

from annotation.services import user_has_role

register = template.Library()


@register.filter
def has_role(user, role: str) -> bool:
    """{% if user|has_role:"lead" %}: the same rule the views enforce."""
    return user_has_role(user, role)
