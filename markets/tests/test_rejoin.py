"""Getting back in: personal rejoin links (who gets one, who sees and revokes it, what opening one does in
every phase), "Continue as" bound to the link a browser joined by (and the forged cookies that must get
nothing), the page a latecomer's invite link opens, and the confirmation before opening."""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse
from django.test import Client

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import invite_rules, services
from markets.errors import DomainError
from markets.models import InviteUse, Participant, RejoinLink, Session
from markets.push import snapshot
from markets.selectors import rejoin as reads
from markets.services import invites
from markets.services import rejoin as rejoin_services
from oracle.models import Tick

pytestmark = pytest.mark.django_db

User = get_user_model()
HX = {"HX-Request": "true"}


def join_link(invite) -> str:
    return f"/join/{invite_rules.sign(invite.token_id)}"


def rejoin_url(link: RejoinLink) -> str:
    return f"/rejoin/{invite_rules.sign_rejoin(link.token_id)}"


def live(username: str, session_id: str = "pre") -> RejoinLink:
    return RejoinLink.objects.get(participant__username=username, participant__session_id=session_id, revoked_at=None)


def add_bot(users, session_id: str = "pre"):
    """A bot as `run_bots` makes one: no usable password, joined by the organiser by name."""
    bot = User(username="bot-maker-1")
    bot.set_unusable_password()
    bot.save()
    services.join_session(users["org"], session_id, "maker", username="bot-maker-1")
    return bot


@pytest.fixture
def pre(users):
    """Session `pre` (not open; alice, bob, mm, mm2 with passwords), a link for 5 traders, Zoë joined
    by it (a guest), and a bot."""
    create_demo(users, "pre", open_it=False)
    invite = invites.create_invite(users["org"], "pre", "trader", 5)
    zoe = invites.join_by_invite(invite_rules.sign(invite.token_id), "Zoë").user
    bot = add_bot(users)
    return SimpleNamespace(u=users, invite=invite, zoe=zoe, bot=bot)


def refused(act, code: str) -> DomainError:
    before = sorted(RejoinLink.objects.values_list("id", "token_id", "revoked_at"))
    with pytest.raises(DomainError) as info:
        act()
    assert info.value.code == code, info.value.message
    assert sorted(RejoinLink.objects.values_list("id", "token_id", "revoked_at")) == before, "a refusal wrote"
    return info.value


# ---------------------------------------------------------------- who gets a link, who sees and revokes it


def test_a_guest_joined_by_invite_has_one_live_link_and_nobody_else_any(pre):
    zoe = Participant.objects.get(session_id="pre", user=pre.zoe)
    assert InviteUse.objects.get(participant=zoe).invite_id == pre.invite.id
    assert RejoinLink.objects.filter(participant=zoe, revoked_at=None).count() == 1
    assert reads.way_back_kinds(Session.objects.get(id="pre")) == {
        pre.zoe.pk: "link",
        pre.bot.pk: "none",
        **{pre.u[name].pk: "password" for name in ("org", "alice", "bob", "mm", "mm2")},
    }
    assert RejoinLink.objects.count() == 1  # nothing for password accounts or the bot
    org = pre.u["org"]
    has_password = refused(
        lambda: rejoin_services.issue_rejoin_link(org, "pre", pre.u["alice"].pk), "rejoin_has_password"
    )
    assert "has a password" in has_password.message
    assert (
        "did not join by an invite link"
        in refused(lambda: rejoin_services.issue_rejoin_link(org, "pre", pre.bot.pk), "rejoin_not_guest").message
    )
    # the same live link, however often it is asked for (by the organiser, or by Zoë herself)
    first = live("Zoe")
    assert rejoin_services.issue_rejoin_link(org, "pre", pre.zoe.pk) == first
    assert rejoin_services.issue_rejoin_link(pre.zoe, "pre", pre.zoe.pk) == first
    assert reads.no_link_refusal(Participant.objects.get(user=pre.u["org"], session_id="pre")).code == (
        "rejoin_has_password"
    )


def test_only_the_organiser_side_and_the_participant_see_or_revoke_a_link(pre):
    alice, eve, anonymous = pre.u["alice"], pre.u["eve"], SimpleNamespace(is_authenticated=False)
    for who in (alice, eve):
        refused(lambda who=who: rejoin_services.issue_rejoin_link(who, "pre", pre.zoe.pk), "not_organiser")
        refused(lambda who=who: rejoin_services.revoke_rejoin_link(who, "pre", pre.zoe.pk), "not_organiser")
    refused(lambda: rejoin_services.revoke_rejoin_link(anonymous, "pre", pre.zoe.pk), "unauthenticated")
    refused(lambda: rejoin_services.revoke_rejoin_link(pre.u["org"], "pre", 999999), "participant_not_found")
    refused(lambda: rejoin_services.revoke_rejoin_link(pre.u["org"], "nope", pre.zoe.pk), "participant_not_found")
    old = live("Zoe")
    new = rejoin_services.revoke_rejoin_link(pre.u["org"], "pre", pre.zoe.pk)
    old.refresh_from_db()
    assert old.revoked_at is not None and old.revoked_by == pre.u["org"] and new.token_id != old.token_id
    assert live("Zoe") == new
    # Zoë may make herself a new one (a link she shared by mistake); staff may too
    mine = rejoin_services.revoke_rejoin_link(pre.zoe, "pre", pre.zoe.pk)
    assert live("Zoe") == mine != new
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    assert rejoin_services.revoke_rejoin_link(staff, "pre", pre.zoe.pk) == live("Zoe")
    assert Event.objects.filter(type__icontains="rejoin").count() == 0  # access state, not the ledger


def test_the_database_never_holds_two_live_links_for_one_participant(pre):
    zoe = Participant.objects.get(session_id="pre", user=pre.zoe)
    with pytest.raises(IntegrityError), transaction.atomic():
        RejoinLink.objects.create(session_id="pre", participant=zoe, token_id="x" * 16, created_at=clock.now())


@pytest.mark.django_db(transaction=True)
def test_two_revocations_at_once_leave_exactly_one_live_link(users):
    if connection.vendor == "sqlite":
        assert "memory" not in str(settings.DATABASES["default"]["NAME"]), "needs a file database"
    create_demo(users, "pre", open_it=False)
    invite = invites.create_invite(users["org"], "pre", "trader", 5)
    zoe = invites.join_by_invite(invite_rules.sign(invite.token_id), "Zoe").user
    barrier = threading.Barrier(3)
    results: list = [None] * 3

    def revoke(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            who = users["org"] if i else zoe
            results[i] = rejoin_services.revoke_rejoin_link(who, "pre", zoe.pk).token_id
        except BaseException as exc:  # asserted on below
            results[i] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=revoke, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, str) and len(r) == 16 for r in results), results
    assert RejoinLink.objects.filter(participant__user=zoe).count() == 4
    assert RejoinLink.objects.filter(participant__user=zoe, revoked_at=None).count() == 1


# ---------------------------------------------------------------- opening a rejoin link


def add_ticks(session_id: str = "pre") -> None:
    prices = {"AAPL": 190_000_000, "NVDA": 120_000_000, "META": 500_000_000, "ORCL": 140_000_000}
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=s, at=clock.now(), price=p, source="test") for s, p in prices.items()
    )


@pytest.mark.parametrize("phase", ["created", "open", "settled"])
def test_a_rejoin_link_signs_in_on_any_browser_and_lands_on_the_same_floor(pre, phase):
    if phase != "created":
        services.open_session(pre.u["org"], "pre")
    if phase == "settled":
        add_ticks()
        services.settle_session(pre.u["org"], "pre")
    phone = Client()
    asked = phone.get(rejoin_url(live("Zoe")))  # a GET (a chat app's preview, say) signs in nobody
    assert asked.status_code == 200 and "Continue as Zoë" in asked.content.decode()
    assert "_auth_user_id" not in phone.session
    opened = phone.post(rejoin_url(live("Zoe")))
    assert opened.status_code == 302 and opened["Location"] == "/sessions/pre/"
    floor = phone.get("/sessions/pre/")
    assert floor.status_code == 200 and floor.context["me"].user_id == pre.zoe.pk
    if phase != "created":
        mine = [h for h in floor.context["holdings"] if h.username == "Zoe"]
        assert len(mine) == 1 and any(mine[0].qty)
    # a second use works too (a link is for coming back, not single use)
    assert Client().post(rejoin_url(live("Zoe")))["Location"] == "/sessions/pre/"


def test_a_revoked_link_is_dead_at_once_and_signs_out_what_it_signed_in(pre):
    old = live("Zoe")
    laptop = Client()
    assert laptop.post(rejoin_url(old)).status_code == 302  # signed in by it before the revocation
    organiser = Client()
    organiser.force_login(pre.u["org"])
    assert organiser.post(f"/sessions/pre/rejoin/{pre.zoe.pk}/revoke", headers=HX).status_code == 200
    stranger = Client()
    gone = stranger.get(rejoin_url(old))
    assert gone.status_code == 410 and "was replaced" in gone.content.decode()
    assert "_auth_user_id" not in stranger.session
    assert stranger.post(rejoin_url(live("Zoe")))["Location"] == "/sessions/pre/"  # the new one works
    # Whoever the old link signed in (a leaked link: a stranger) is signed out; the new link signs in again.
    assert laptop.get("/sessions/pre/")["Location"].startswith("/accounts/login/")
    assert stranger.get("/sessions/pre/").context["me"].user_id == pre.zoe.pk


def test_a_participant_revoking_their_own_link_stays_signed_in_on_this_device(pre):
    mine, other = Client(), Client()
    for browser in (mine, other):
        assert browser.post(rejoin_url(live("Zoe"))).status_code == 302
    assert mine.post(f"/sessions/pre/rejoin/{pre.zoe.pk}/revoke", headers=HX).status_code == 200
    assert mine.get("/sessions/pre/").context["me"].user_id == pre.zoe.pk
    assert other.get("/sessions/pre/")["Location"].startswith("/accounts/login/")


def test_tampered_links_and_accounts_a_link_may_not_sign_in_get_nothing(pre):
    link = live("Zoe")
    token = invite_rules.sign_rejoin(link.token_id)
    for bad in (token[:-2], token + "x", invite_rules.sign(link.token_id), "garbage"):  # an invite's salt is not
        page = Client().get(f"/rejoin/{bad}")
        assert page.status_code == 404 and "not valid" in page.content.decode()
    # the guest got a password since: the link says to use it, and offers the sign-in page for her floor
    pre.zoe.set_password("a real one")
    pre.zoe.save()
    browser = Client()
    page = browser.get(rejoin_url(link))
    text = page.content.decode()
    assert page.status_code == 403 and "has a password" in text and "/accounts/login/?next=/sessions/pre/" in text
    assert "_auth_user_id" not in browser.session
    assert browser.post(rejoin_url(link)).status_code == 403
    # deactivated, or made staff: nobody is signed in
    pre.zoe.set_unusable_password()
    pre.zoe.is_staff = True
    pre.zoe.save()
    assert Client().get(rejoin_url(link)).status_code == 403
    pre.zoe.is_staff, pre.zoe.is_active = False, False
    pre.zoe.save()
    assert Client().get(rejoin_url(link)).status_code == 403


def test_a_browser_signed_in_as_someone_else_is_asked_first(pre):
    organiser = Client()
    organiser.force_login(pre.u["org"])
    asked = organiser.get(rejoin_url(live("Zoe")))
    assert asked.status_code == 200 and "Continue as Zoë" in asked.content.decode()
    assert organiser.get("/sessions/pre/").context["me"].user_id == pre.u["org"].pk  # still the organiser
    assert organiser.post(rejoin_url(live("Zoe")))["Location"] == "/sessions/pre/"
    assert organiser.get("/sessions/pre/").context["me"].user_id == pre.zoe.pk
    assert organiser.get(rejoin_url(live("Zoe")))["Location"] == "/sessions/pre/"  # already her: the floor


# ---------------------------------------------------------------- the panel: the monitor's dialog, the floor's own


def test_the_organiser_sees_every_guests_link_with_its_qr_and_revokes_it(client, pre):
    client.force_login(pre.u["org"])
    panel = client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}", headers=HX)
    text = panel.content.decode()
    assert panel.status_code == 200 and "Rejoin link · Zoë" in text and "<svg" in text
    assert f"http://testserver{rejoin_url(live('Zoe'))}" in text and "<html" not in text
    old = live("Zoe")
    again = client.post(f"/sessions/pre/rejoin/{pre.zoe.pk}/revoke", headers=HX).content.decode()
    assert rejoin_url(old) not in again and rejoin_url(live("Zoe")) in again and "no longer works" in again
    assert "has a password" in client.get(f"/sessions/pre/rejoin/{pre.u['alice'].pk}").content.decode()
    assert "did not join by an invite link" in client.get(f"/sessions/pre/rejoin/{pre.bot.pk}").content.decode()
    assert client.get("/sessions/pre/rejoin/999999").status_code == 404
    # without scripts: a page of its own, and the revocation comes back to it
    page = client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}")
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert client.post(f"/sessions/pre/rejoin/{pre.zoe.pk}/revoke")["Location"] == f"/sessions/pre/rejoin/{pre.zoe.pk}"


def test_a_participant_sees_only_their_own_link(client, pre):
    client.force_login(pre.zoe)
    own = client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}", headers=HX).content.decode()
    assert "Open this on another device" in own and rejoin_url(live("Zoe")) in own
    client.force_login(pre.u["alice"])
    before = live("Zoe")
    assert client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}").status_code == 403
    assert client.post(f"/sessions/pre/rejoin/{pre.zoe.pk}/revoke").status_code == 403
    assert live("Zoe") == before
    assert client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}").status_code == 403
    client.logout()
    assert client.get(f"/sessions/pre/rejoin/{pre.zoe.pk}")["Location"].startswith("/accounts/login/")


def test_the_monitor_row_offers_a_link_for_guests_only(client, pre):
    client.force_login(pre.u["org"])
    page = client.get("/sessions/pre/monitor").content.decode()
    assert 'data-testid="rejoin-Zoe"' in page and 'id="rejoin-dialog"' in page
    assert 'data-testid="rejoin-alice"' not in page and 'data-testid="rejoin-bot-maker-1"' not in page
    row = {r.username: r.way_back for r in client.get("/sessions/pre/monitor").context["rows"]}
    assert row["Zoe"] == "link" and row["alice"] == "password" and row["bot-maker-1"] == "none"


def test_the_floor_offers_the_viewer_their_own_link_and_never_pushes_it(client, pre):
    services.open_session(pre.u["org"], "pre")
    client.force_login(pre.zoe)
    page = client.get("/sessions/pre/").content.decode()
    assert "Open this on another device" in page and f"/sessions/pre/rejoin/{pre.zoe.pk}" in page
    assert rejoin_url(live("Zoe")) not in page  # only when opened (read then, for her alone)
    client.force_login(pre.u["alice"])
    theirs = client.get("/sessions/pre/").content.decode()
    assert f"/sessions/pre/rejoin/{pre.u['alice'].pk}" in theirs and f"/rejoin/{pre.zoe.pk}" not in theirs
    client.force_login(pre.u["org"])
    assert "Open this on another device" not in client.get("/sessions/pre/").content.decode()
    shared = snapshot.floor(Session.objects.get(id="pre"), oob=True)["parts"]
    assert not any("rejoin" in str(html) for html in shared.values())


# ---------------------------------------------------------------- Continue as, and its forgeries


def signed_cookie(session_id: str, value: str, salt: str) -> str:
    """A cookie signed with the site's key, as the page signs it: what someone holding the key (or a
    flaw elsewhere) could make. The server must still check what it names."""
    response = HttpResponse()
    response.set_signed_cookie(f"sc_joined_{session_id}", value, salt=f"{salt}:{session_id}")
    return response.cookies[f"sc_joined_{session_id}"].value


def cookie_for(session_id: str, token_id: str, user_id: int) -> str:
    return signed_cookie(session_id, f"{token_id}/{user_id}", "markets.invites.returning.v2")


def test_continue_as_is_offered_after_the_opening_through_the_same_link(client, pre):
    client.post(join_link(pre.invite), {"name": "Yan"})
    client.post("/accounts/logout/")
    services.open_session(pre.u["org"], "pre")
    page = client.get(join_link(pre.invite))
    assert page.status_code == 200 and "Continue as Yan" in page.content.decode()
    assert client.post(join_link(pre.invite), {"action": "continue"})["Location"] == "/sessions/pre/"
    assert client.get("/sessions/pre/").context["me"].username == "Yan"


def test_forged_returning_cookies_get_nothing(pre):
    other = invites.create_invite(pre.u["org"], "pre", "maker", 5)
    yan = invites.join_by_invite(invite_rules.sign(other.token_id), "Yan").user
    added = User(username="added")
    added.set_unusable_password()
    added.save()
    services.join_session(pre.u["org"], "pre", "trader", username="added")
    forged = {
        "the bot": (pre.invite.token_id, pre.bot.pk),
        "someone the organiser added": (pre.invite.token_id, added.pk),
        "a guest who joined by another link": (pre.invite.token_id, yan.pk),
        "a password account": (pre.invite.token_id, pre.u["alice"].pk),
        "another link's token": (other.token_id, pre.zoe.pk),
    }
    for who, (token_id, user_id) in forged.items():
        browser = Client()
        browser.cookies["sc_joined_pre"] = cookie_for("pre", token_id, user_id)
        assert "Continue as" not in browser.get(join_link(pre.invite)).content.decode(), who
        assert browser.post(join_link(pre.invite), {"action": "continue"}).status_code == 409, who
        assert "_auth_user_id" not in browser.session, who
    # the real one works, until the link is revoked: then nothing, even after the opening
    honest = Client()
    honest.cookies["sc_joined_pre"] = cookie_for("pre", pre.invite.token_id, pre.zoe.pk)
    assert "Continue as Zoë" in honest.get(join_link(pre.invite)).content.decode()
    invites.revoke_invite(pre.u["org"], pre.invite.id)
    services.open_session(pre.u["org"], "pre")
    page = honest.get(join_link(pre.invite))
    assert page.status_code == 410 and "Continue as" not in page.content.decode()
    assert honest.post(join_link(pre.invite), {"action": "continue"}).status_code == 409
    assert "_auth_user_id" not in honest.session
    # a cookie of the old kind (a user id alone) names nobody
    old_kind = signed_cookie("pre", str(pre.zoe.pk), "markets.invites.returning")
    browser = Client()
    browser.cookies["sc_joined_pre"] = old_kind
    assert browser.post(join_link(other), {"action": "continue"}).status_code == 409


def test_reading_a_returning_cookie_value():
    assert invite_rules.read_returning(invite_rules.returning_value("abc_-9", 12)) == ("abc_-9", 12)
    for bad in (None, 12, "", "12", "a/b", "/12", "a/1/2", "a/-1", "a/\uff11\uff12", "x" * 33 + "/1", "a/" + "9" * 19):
        assert invite_rules.read_returning(bad) is None, bad


# ---------------------------------------------------------------- the latecomer


def test_a_latecomer_is_told_plainly_and_may_watch_a_public_session(pre):
    services.open_session(pre.u["org"], "pre")
    opened_at = Session.objects.get(id="pre").opened_at
    page = Client().get(join_link(pre.invite))
    text = page.content.decode()
    assert page.status_code == 409 and 'data-testid="join-form"' not in text
    assert f"This session started at {opened_at:%H:%M} UTC" in text and "joining closed when it opened" in text
    assert "ask the organiser for your rejoin link" in text
    assert 'data-testid="watch-form"' in text and "/accounts/login/?next=/sessions/pre/" in text
    # A latecomer with no account watches under the name they type: signed in, holding nothing, no event.
    before = Event.objects.count()
    late = Client()
    watching = late.post(join_link(pre.invite), {"action": "watch", "name": "Léa Late"})
    assert watching.status_code == 302 and watching["Location"] == "/sessions/pre/"
    floor = late.get("/sessions/pre/")
    assert floor.context["me"] is None and "You are watching" in floor.content.decode()
    assert "Léa Late" in floor.content.decode()  # the top bar names them as typed
    assert Event.objects.count() == before
    refused = Client().post(join_link(pre.invite), {"action": "watch", "name": " "})
    assert refused.status_code == 422 and "_auth_user_id" not in refused.wsgi_request.session
    signed_in = Client()
    signed_in.force_login(pre.u["eve"])
    assert 'href="/sessions/pre/" data-testid="watch"' in signed_in.get(join_link(pre.invite)).content.decode()
    # the one who joined is still let through to the floor
    zoe = Client()
    zoe.force_login(pre.zoe)
    assert zoe.get(join_link(pre.invite))["Location"] == "/sessions/pre/"


def test_a_latecomer_to_a_participants_only_or_cancelled_session(users):
    create_demo(users, "priv", open_it=False, visibility="participants")
    invite = invites.create_invite(users["org"], "priv", "trader", 5)
    services.open_session(users["org"], "priv")
    text = Client().get(join_link(invite)).content.decode()
    assert "joining closed when it opened" in text and 'data-testid="watch"' not in text
    assert "for its participants only" in text
    nosy = Client()
    assert nosy.post(join_link(invite), {"action": "watch", "name": "Nosy"}).status_code == 403
    assert "_auth_user_id" not in nosy.session
    create_demo(users, "off", open_it=False)
    invite = invites.create_invite(users["org"], "off", "trader", 5)
    services.cancel_session(users["org"], "off")
    page = Client().get(join_link(invite))
    assert page.status_code == 409 and "was cancelled before it opened" in page.content.decode()


# ---------------------------------------------------------------- confirm before opening


def test_open_asks_first_saying_how_many_joined(client, pre):
    client.force_login(pre.u["org"])
    before = Event.objects.count()
    for url in ("/sessions/pre/open", "/sessions/pre/monitor/open"):
        asked = client.get(url, headers=HX).content.decode()
        said = re.sub(r"\s+", " ", asked)
        assert "Open now and allocate the pool among 6 participants: 3 traders, 3 makers." in said, url
        assert "Nobody can join after this" in said and 'name="holders" value="6"' in said
        page = client.get(url)  # without scripts: the whole page, asking
        assert page.status_code == 200 and "Confirm: open &amp; allocate" in page.content.decode()
    assert Event.objects.count() == before and Session.objects.get(id="pre").status == "created"
    # someone joined while the organiser was reading: asked again, nothing opened
    invites.join_by_invite(invite_rules.sign(pre.invite.token_id), "Late")
    again = client.post("/sessions/pre/open", {"holders": "6"}, headers=HX).content.decode()
    assert "The count changed" in again and "among 7 participants: 4 traders, 3 makers" in again
    assert Session.objects.get(id="pre").status == "created"
    assert client.post("/sessions/pre/open", {"holders": "7"}, headers=HX)["HX-Redirect"] == "/sessions/pre/"
    assert Session.objects.get(id="pre").status == "open"


def test_the_monitor_opens_on_the_confirm(client, pre):
    client.force_login(pre.u["org"])
    done = client.post("/sessions/pre/monitor/open", {"holders": "6"}, headers=HX)
    assert done.status_code == 200 and Session.objects.get(id="pre").status == "open"
    client.force_login(pre.u["alice"])
    assert "Open now" not in client.get("/sessions/pre/open", headers=HX).content.decode()


def test_with_nobody_to_allocate_to_it_says_so_and_offers_no_confirm(client, users):
    services.create_session(users["org"], session_id="empty", legs=["AAPL", "NVDA"], q=[10, 20])  # only the organiser
    client.force_login(users["org"])
    for url in ("/sessions/empty/open", "/sessions/empty/monitor/open"):
        asked = client.get(url, headers=HX).content.decode()
        assert "nobody to allocate the pool to" in asked and "Confirm: open" not in asked, url


def test_the_admin_shows_rejoin_links_without_their_tokens_and_revokes_through_the_service(client, pre):
    org = pre.u["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    client.force_login(org)
    old = live("Zoe")
    listing = client.get("/admin/markets/rejoinlink/").content.decode()
    assert "Zoe" in listing and old.token_id not in listing
    detail = client.get(f"/admin/markets/rejoinlink/{old.id}/change/")
    assert detail.status_code == 200 and old.token_id not in detail.content.decode()
    assert client.get("/admin/markets/inviteuse/").status_code == 200
    done = client.post(
        "/admin/markets/rejoinlink/", {"action": "revoke_rejoin_links", "_selected_action": [old.id]}, follow=True
    )
    assert "revoked" in done.content.decode() and live("Zoe") != old
    assert client.get("/admin/markets/rejoinlink/add/").status_code == 403


def test_who_takes_part_in_a_participants_only_session_cannot_be_probed(client, users):
    create_demo(users, "priv", open_it=False, visibility="participants")
    client.force_login(users["eve"])
    there = client.get(f"/sessions/priv/rejoin/{users['alice'].pk}")
    missing = client.get(f"/sessions/priv/rejoin/{users['eve'].pk}")
    assert there.status_code == missing.status_code == 404
    assert there.context["message"] == missing.context["message"]
    client.force_login(users["bob"])  # a participant who sees the session is told it is not his to see
    assert client.get(f"/sessions/priv/rejoin/{users['alice'].pk}").status_code == 403


def test_watching_by_link_is_for_latecomers_with_a_live_link_only(pre):
    with pytest.raises(DomainError) as early:  # before the opening, the link is for joining
        invites.watch_by_invite(invite_rules.sign(pre.invite.token_id), "Early")
    assert early.value.code == "session_joinable"
    services.open_session(pre.u["org"], "pre")
    invites.revoke_invite(pre.u["org"], pre.invite.id)
    with pytest.raises(DomainError) as revoked:
        invites.watch_by_invite(invite_rules.sign(pre.invite.token_id), "Late")
    assert revoked.value.code == "invite_revoked"
    with pytest.raises(DomainError) as forged:
        invites.watch_by_invite("not-a-token", "Late")
    assert forged.value.code == "invite_invalid"
