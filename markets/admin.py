"""Organisers' admin. Read models are shown read-only; every change goes through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from markets import domain, services
from markets.errors import DomainError
from markets.forms import AddParticipantForm, SessionCreateForm
from markets.models import Holding, Participant, Payout, Session, Trade


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ParticipantInline(ReadOnlyInline):
    model = Participant
    fields = ("username", "role", "joined_at")
    readonly_fields = fields


class HoldingInline(ReadOnlyInline):
    model = Holding
    fields = ("participant", "leg", "quantity", "initial_quantity")
    readonly_fields = fields

    @admin.display(description="x (units)")
    def quantity(self, obj: Holding) -> str:
        return domain.qty_str(obj.qty)

    @admin.display(description="initial")
    def initial_quantity(self, obj: Holding) -> str:
        return domain.qty_str(obj.initial)


class PayoutInline(ReadOnlyInline):
    model = Payout
    fields = ("participant", "amount")
    readonly_fields = fields


def _run_for_each(modeladmin, request: HttpRequest, queryset, fn, done: str) -> None:
    for session in queryset:
        try:
            fn(request.user, session.id)
        except DomainError as exc:
            modeladmin.message_user(request, f"{session.id}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{session.id}: {done}", messages.SUCCESS)


@admin.action(description="Open the selected sessions (assign initial allocations)")
def open_sessions(modeladmin, request, queryset) -> None:
    _run_for_each(modeladmin, request, queryset, services.open_session, "opened")


@admin.action(description="Settle the selected sessions at the oracle's fixing")
def settle_sessions(modeladmin, request, queryset) -> None:
    _run_for_each(modeladmin, request, queryset, services.settle_session, "settled")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "status", "legs", "basket", "start_mode", "end_mode", "t1", "t2", "waiting_reason")
    list_filter = ("status", "start_mode", "end_mode")
    search_fields = ("id", "title")
    actions = [open_sessions, settle_sessions]
    inlines = [ParticipantInline, HoldingInline, PayoutInline]
    readonly_fields = [f.name for f in Session._meta.fields]

    @admin.display(description="q")
    def basket(self, obj: Session) -> str:
        return ", ".join(domain.qty_str(x).rstrip("0").rstrip(".") for x in obj.q)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        """Sessions are created by the service (it writes SessionCreated), never by a raw save."""
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = SessionCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                session = services.create_session(request.user, **form.service_kwargs())
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Session {session.id} created; you are its organiser.")
                return redirect(reverse("admin:markets_session_change", args=[session.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Create a session",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/markets/service_form.html", context)


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("username", "session", "role", "joined_at")
    list_filter = ("role", "session")
    search_fields = ("username", "session__id")
    readonly_fields = [f.name for f in Participant._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        """The organiser adds a user to a session that has not opened yet (ParticipantJoined)."""
        form = AddParticipantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.join_session(request.user, data["session"].id, data["role"], username=data["username"])
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"{data['username']} joined {data['session'].id}.")
                return redirect(reverse("admin:markets_participant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a participant",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/markets/service_form.html", context)


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "taker", "maker", "give_leg", "get_leg", "give", "get", "executed_at", "seq")
    list_filter = ("session",)
    readonly_fields = [f.name for f in Trade._meta.fields]

    @admin.display(description="gave")
    def give(self, obj: Trade) -> str:
        return domain.qty_str(obj.give_qty)

    @admin.display(description="got")
    def get(self, obj: Trade) -> str:
        return domain.qty_str(obj.get_qty)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# ---------------------------------------------------------------- API tokens

from markets import tokens as api_tokens  # noqa: E402
from markets.models import ApiToken  # noqa: E402


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made here (or by `manage.py create_api_token`); the raw token is shown once, on save."""

    list_display = ("prefix", "user", "name", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("user__username", "name", "prefix")
    raw_id_fields = ("user",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name")
        return ("user", "name", "prefix", "is_active", "created_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("user", "prefix", "created_at", "last_used_at")

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = api_tokens.assign_new_key(obj)
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            f"API token for {obj.user}: {raw} — copy it now: it is stored only as a hash and will not be shown again.",
            messages.WARNING,
        )
