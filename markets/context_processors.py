from django.conf import settings

from markets import demo


def site(request) -> dict:
    """Demo mode's switcher lists the demo's own accounts, to clients allowed to use it."""
    context = {"DEMO_MODE": settings.DEMO_MODE, "demo_switch": demo.switch_allowed(request)}
    if context["demo_switch"]:
        context["demo_users"] = list(demo.accounts()[:30])
    return context
