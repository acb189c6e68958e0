from django.conf import settings


def site(request) -> dict:
    context = {"DEMO_MODE": settings.DEMO_MODE}
    if settings.DEMO_MODE:
        from markets.views import demo_users

        context["demo_users"] = demo_users()
    return context
