"""Organisers' admin. Read models are shown read-only; every change goes through the services. Batch
auctions' part (the session form's settings, orders, batches) is `markets.admin_batch`; corporate actions'
(`markets.admin_actions`) are listed on the session's page."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ledger.admin import ReadOnlyAdmin
from markets import admin_batch, domain, services  # noqa: F401 (admin_batch registers the orders and batches)
from markets import tokens as api_tokens
from markets.admin_actions import CorporateActionInline
from markets.errors import DomainError
from markets.forms import AddParticipantForm, SessionCreateForm
from markets.models import (
    ApiToken,
    Holding,
    Invite,
    InviteUse,
    Participant,
    Payout,
    RejoinLink,
    Session,
    Settlement,
    Trade,
)
from markets.selectors import fixing_record
from markets.services import invites as invite_services
from markets.services import rejoin as rejoin_services


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ParticipantInline(ReadOnlyInline):
    model = Participant
    fields = ("username", "role", "joined_at", "liquidated_at", "cash")  # liquidated_at: shorting; cash: actions
    readonly_fields = fields


class HoldingInline(ReadOnlyInline):
    model = Holding
    fields = ("participant", "leg", "quantity", "reserved_quantity", "initial_quantity")
    readonly_fields = fields

    @admin.display(description="reserved")
    def reserved_quantity(self, obj: Holding) -> str:
        return domain.qty_str(obj.reserved)

    @admin.display(description="x (units)")
    def quantity(self, obj: Holding) -> str:
        return domain.qty_str(obj.qty)

    @admin.display(description="initial")
    def initial_quantity(self, obj: Holding) -> str:
        return domain.qty_str(obj.initial)


class PayoutInline(ReadOnlyInline):
    model = Payout
    fields = ("participant", "amount", "gross")  # gross: before a settlement haircut (bounded shorting)
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


class ServiceFormAdmin(admin.ModelAdmin):
    """Adding goes through a service (it writes the event), never through a raw model save."""

    add_title = "Add"

    def run_service(self, request: HttpRequest, form) -> str:
        """Call the service with the valid form; return the URL to go to (DomainError: shown on the form)."""
        raise NotImplementedError

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = self.add_form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                target = self.run_service(request, form)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect(target)
        context = {
            **self.admin_site.each_context(request),
            "title": self.add_title,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/markets/service_form.html", context)


@admin.register(Session)
class SessionAdmin(ServiceFormAdmin):
    list_display = ("id", "title", "status", "mechanism", "shorting_settings", "legs", "basket", "start_mode",
                    "end_mode", "t1", "t2", "waiting_reason")  # fmt: skip
    list_filter = ("status", "mechanism", "start_mode", "end_mode")
    search_fields = ("id", "title")
    actions = [open_sessions, settle_sessions]
    inlines = [ParticipantInline, HoldingInline, PayoutInline, CorporateActionInline]
    readonly_fields = [f.name for f in Session._meta.fields] + ["shorting_settings", "fixing_described", "fixing"]

    @admin.display(description="fixing rule in words")
    def fixing_described(self, obj: Session) -> str:
        return fixing_record.rule_words(obj.fixing_rule)

    @admin.display(description="fixing record")
    def fixing(self, obj: Session) -> str:
        """The settlement's fixing record, read-only: how, when, and per leg the value, the tier that answered,
        why the tiers above could not, the ticks used, sources, volume and a composite's sources."""
        settlement = Settlement.objects.filter(session=obj).first()
        if settlement is None:
            return "not settled yet"
        record = fixing_record.read_record(settlement.fixing, settlement.prices, obj.legs)
        when = f"at {record.at}" + (f", window ended {record.end}" if record.end and record.end != record.at else "")
        window = record.window or {}
        span = f"; window {window.get('before', 0)} s before, {window.get('after', 0)} s after" if window else ""
        heads = ("leg", *fixing_record.LEG_COLUMNS)
        rows = [(leg.leg, *fixing_record.leg_cells(leg).values()) for leg in record.legs]
        return format_html(
            "<p>{} ({}; {}{})</p><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
            record.described,
            record.source,
            when if record.at else "no fixing instant",
            span,
            format_html_join("", "<th>{}</th>", ((h.replace("_", " "),) for h in heads)),
            format_html_join(
                "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in r)),) for r in rows)
            ),
        )

    @admin.display(description="shorting")
    def shorting_settings(self, obj: Session) -> str:
        """Bounded shorting's settings in a line, read-only like the batch settings ("off" without)."""
        if not obj.shorting:
            return "off"
        return f"short limit {obj.short_limit}, margin band {obj.margin_band}, initial margin {obj.initial_margin}"

    @admin.display(description="q")
    def basket(self, obj: Session) -> str:
        return ", ".join(domain.qty_str(x).rstrip("0").rstrip(".") for x in obj.q)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    add_form = SessionCreateForm  # the floor's session form, with the mechanism and batch settings
    add_title = "Create a session"

    def run_service(self, request: HttpRequest, form: SessionCreateForm) -> str:
        session = services.create_session(request.user, **form.service_kwargs())
        self.message_user(request, f"Session {session.id} created; you are its organiser.")
        return reverse("admin:markets_session_change", args=[session.pk])


@admin.register(Participant)
class ParticipantAdmin(ServiceFormAdmin):
    list_display = ("username", "session", "role", "joined_at", "liquidated_at")
    list_filter = ("role", "session")
    search_fields = ("username", "session__id")
    readonly_fields = [f.name for f in Participant._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    add_form = AddParticipantForm
    add_title = "Add a participant"

    def run_service(self, request: HttpRequest, form: AddParticipantForm) -> str:
        """The organiser adds a user to a session that has not opened yet (ParticipantJoined)."""
        data = form.cleaned_data
        services.join_session(request.user, data["session"].id, data["role"], username=data["username"])
        self.message_user(request, f"{data['username']} joined {data['session'].id}.")
        return reverse("admin:markets_participant_changelist")


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("id", "session", "taker", "maker", "give_leg", "get_leg", "give", "get", "executed_at", "seq")
    list_filter = ("session",)
    readonly_fields = [f.name for f in Trade._meta.fields]

    @admin.display(description="gave")
    def give(self, obj: Trade) -> str:
        return domain.qty_str(obj.give_qty)

    @admin.display(description="got")
    def get(self, obj: Trade) -> str:
        return domain.qty_str(obj.get_qty)


# ---------------------------------------------------------------- API tokens


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


# ---------------------------------------------------------------- invites


@admin.action(description="Revoke the selected invite links")
def revoke_invites(modeladmin, request, queryset) -> None:
    for invite in queryset:
        try:
            invite_services.revoke_invite(request.user, invite.id)
        except DomainError as exc:
            modeladmin.message_user(request, f"Invite {invite.id}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"Invite {invite.id} ({invite}): revoked", messages.SUCCESS)


@admin.register(Invite)
class InviteAdmin(ReadOnlyAdmin):
    """Made on the session's invites page or by the API; here they are read, and revoked by the service."""

    list_display = ("id", "session", "role", "name", "uses", "max_uses", "created_by", "created_at", "revoked_at")
    list_filter = ("role", "session")
    search_fields = ("session__id", "name")
    readonly_fields = [f.name for f in Invite._meta.fields if f.name != "token_id"]
    exclude = ("token_id",)
    actions = [revoke_invites]


# ---------------------------------------------------------------- the way back in


@admin.register(InviteUse)
class InviteUseAdmin(ReadOnlyAdmin):
    """Which invite link each guest joined by: "Continue as" is offered only through that link."""

    list_display = ("id", "participant", "invite", "used_at")
    list_filter = ("invite__session",)
    search_fields = ("participant__username", "invite__session__id")


@admin.action(description="Revoke the selected rejoin links (each participant gets a new one)")
def revoke_rejoin_links(modeladmin, request, queryset) -> None:
    for link in queryset.select_related("participant"):
        try:
            rejoin_services.revoke_rejoin_link(request.user, link.session_id, link.participant.user_id)
        except DomainError as exc:
            modeladmin.message_user(request, f"Rejoin link {link.id}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"Rejoin link {link.id} ({link.participant}): revoked", messages.SUCCESS)


@admin.register(RejoinLink)
class RejoinLinkAdmin(ReadOnlyAdmin):
    """Personal rejoin links: shown (never their token) and revoked by the service; the monitor shows the links."""

    list_display = ("id", "session", "participant", "created_by", "created_at", "revoked_at", "revoked_by")
    list_filter = ("session",)
    search_fields = ("session__id", "participant__username")
    readonly_fields = [f.name for f in RejoinLink._meta.fields if f.name != "token_id"]
    exclude = ("token_id",)
    actions = [revoke_rejoin_links]
