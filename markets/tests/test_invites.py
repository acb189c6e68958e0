"""Getting people in: invite links, the join page, returning browsers, QR codes, bulk names and CSV,
the API and the admin. Every refusal is checked to say what went wrong and to leave nothing behind: no
event, no user, no participant, no use of the link."""

from __future__ import annotations

import csv
import io
import json
import threading
import unicodedata
from types import SimpleNamespace

import pytest
import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conftest import create_demo, make_user
from ledger.models import Event
from markets import audit, invite_rules, services, tokens
from markets.errors import DomainError, http_status
from markets.invite_views import qr_svg
from markets.models import Holding, Invite, Participant
from markets.services import invites

pytestmark = pytest.mark.django_db

User = get_user_model()
_SALT = "markets.invites.returning.v2"  # the returning cookie's, as the join page signs it


def link(invite: Invite) -> str:
    return f"/join/{invite_rules.sign(invite.token_id)}"


def token(invite: Invite) -> str:
    return invite_rules.sign(invite.token_id)


def world() -> tuple:
    """What a refused join or invite must leave as it was."""
    return (
        Event.objects.count(),
        User.objects.count(),
        Participant.objects.count(),
        sorted(Invite.objects.values_list("id", "uses", "revoked_at")),
    )


def refused(act, code: str, status: int, text: str = "") -> DomainError:
    before = world()
    with pytest.raises(DomainError) as info:
        act()
    exc = info.value
    assert (exc.code, http_status(exc)) == (code, status), exc.message
    assert text in exc.message
    assert world() == before, "a refusal wrote something"
    return exc


@pytest.fixture
def pre(users):
    """Session `pre` created, not open (alice, bob trade; mm, mm2 make), and a link for 3 traders."""
    session = create_demo(users, "pre", open_it=False)
    invite = invites.create_invite(users["org"], "pre", "trader", 3)
    return SimpleNamespace(u=users, session=session, invite=invite)


def last_joined() -> dict:
    return Event.objects.filter(type="ParticipantJoined").order_by("-seq").first().data


# ---------------------------------------------------------------- the rules of names and links


def test_a_display_name_is_trimmed_and_bounded():
    assert invite_rules.clean_display_name("  Zoë   Smith \t") == "Zoë Smith"
    assert invite_rules.clean_display_name("x" * 40) == "x" * 40
    for bad, says in [
        ("", "Type your name"),
        ("   ", "Type your name"),
        ("x" * 41, "at most 40"),
        ("Zoe\x07", "control"),
        ("Zo\u200be", "invisible"),
        ("Eve\u202e", "U+202E"),
        (None, "Type"),
    ]:
        with pytest.raises(DomainError) as info:
            invite_rules.clean_display_name(bad)
        assert info.value.code == "invalid_name" and says in info.value.message


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_typed_name_is_refused_clearly_or_becomes_a_clean_name_and_a_valid_username(text):
    try:
        name = invite_rules.clean_display_name(text)
    except DomainError as exc:
        assert exc.kind == "invalid" and exc.message
        return
    assert 1 <= len(name) <= 40 and name == name.strip()
    assert all(unicodedata.category(c)[0] != "C" for c in name)
    base = invite_rules.username_base(name)
    assert 1 <= len(base) <= 30
    UnicodeUsernameValidator()(base)
    UnicodeUsernameValidator()(invite_rules.free_username(base, {invite_rules.same_name(base)}))


def test_usernames_read_like_the_name():
    assert invite_rules.username_base("Zoë Smith") == "Zoe-Smith"
    assert invite_rules.username_base("李雷") == "李雷"
    assert invite_rules.username_base("!!!") == "guest"
    assert invite_rules.free_username("Zoe", {"zoe", "zoe-2"}) == "Zoe-3"


def test_a_tampered_token_names_nothing():
    good = invite_rules.sign("abc")
    assert invite_rules.unsign(good) == "abc"
    for bad in [good[:-1], good[:-1] + ("A" if good[-1] != "A" else "B"), "abc", "", "x" * 500, None, "abd" + good[3:]]:
        assert invite_rules.unsign(bad) is None


# ---------------------------------------------------------------- the commands


def test_a_link_joins_a_new_guest_named_after_them(pre):
    participant = invites.join_by_invite(token(pre.invite), "  Zoë Smith ")
    user = participant.user
    assert (user.username, user.first_name, participant.role) == ("Zoe-Smith", "Zoë Smith", "trader")
    assert not user.has_usable_password() and not user.is_staff
    assert last_joined() == {"user_id": user.pk, "username": "Zoe-Smith", "name": "Zoë Smith", "role": "trader"}
    assert Invite.objects.get(pk=pre.invite.pk).uses == 1
    # a maker link joins makers; a name taken elsewhere on the site gets a suffix, ignoring case
    make_user("zoe")
    maker_link = invites.create_invite(pre.u["org"], "pre", "maker", 1)
    other = invites.join_by_invite(token(maker_link), "Zoe")
    assert (other.user.username, other.role) == ("Zoe-2", "maker")
    services.open_session(pre.u["org"], "pre")  # they hold their share like anyone who joined
    assert audit.verify_session("pre").ok
    assert Holding.objects.filter(participant=participant).count() == 4


def test_participants_only_sessions_let_invited_people_in(users):
    create_demo(users, "closed", open_it=False, visibility="participants")
    invite = invites.create_invite(users["org"], "closed", "maker", 1)
    assert invites.join_by_invite(token(invite), "Yan").session_id == "closed"


def test_a_refused_join_leaves_no_user_behind(pre):
    t = token(pre.invite)
    refused(lambda: invites.join_by_invite(t, ""), "invalid_name", 422, "Type your name")
    refused(lambda: invites.join_by_invite(t, "ALICE"), "name_taken", 409, "alice has already joined")
    refused(lambda: invites.join_by_invite(t[:-2], "Zoe"), "invite_invalid", 404, "not valid")
    invites.join_by_invite(t, "Zoe")
    refused(lambda: invites.join_by_invite(t, "zoe"), "name_taken", 409, "Zoe has already joined this session")
    invites.join_by_invite(t, "Yan")
    invites.join_by_invite(t, "Xi")
    refused(lambda: invites.join_by_invite(t, "Wu"), "invite_used_up", 409, "All 3 places of this invite link")
    other = invites.create_invite(pre.u["org"], "pre", "trader", 5)
    invites.revoke_invite(pre.u["org"], other.id)
    refused(lambda: invites.join_by_invite(token(other), "Wu"), "invite_revoked", 409, "withdrawn")
    live = invites.create_invite(pre.u["org"], "pre", "trader", 5)
    services.open_session(pre.u["org"], "pre")
    refused(lambda: invites.join_by_invite(token(live), "Wu"), "session_not_joinable", 409, "joining closed")


def test_only_the_organiser_creator_or_staff_make_and_revoke_invites(users):
    create_demo(users, "pre", open_it=False)
    create_demo(users, "secret", open_it=False, visibility="participants")
    refused(lambda: invites.create_invite(users["alice"], "pre", "trader", 3), "not_organiser", 403, "organiser")
    refused(lambda: invites.create_invite(users["eve"], "secret", "trader", 3), "not_visible", 403)
    refused(lambda: invites.create_invite(users["org"], "nope", "trader", 3), "session_not_found", 404)
    for limit in (0, 1001, "3.5", "lots", True, None, "3\n", "\u00a03", "\u0663", "1_0", "+3"):
        refused(lambda limit=limit: invites.create_invite(users["org"], "pre", "trader", limit), "invalid_limit", 422)
    refused(lambda: invites.create_invite(users["org"], "pre", "organiser", 3), "invalid_role", 422)
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    invite = invites.create_invite(staff, "secret", "trader", " 30 ")
    assert (invite.max_uses, invite.created_by) == (30, staff)
    refused(lambda: invites.revoke_invite(users["eve"], invite.id), "not_visible", 403)
    refused(lambda: invites.revoke_invite(users["alice"], invite.id), "not_organiser", 403)
    assert invites.revoke_invite(users["org"], invite.id).revoked_at is not None
    assert invites.revoke_invite(users["org"], invite.id).revoked_at is not None  # twice changes nothing
    refused(lambda: invites.revoke_invite(users["org"], 999), "invite_not_found", 404)
    services.open_session(users["org"], "pre")
    refused(lambda: invites.create_invite(users["org"], "pre", "trader", 3), "session_not_joinable", 409, "opened")


def test_bulk_names_make_one_personal_single_use_link_each(pre):
    pasted = 'name,role\nZoe\n\n"Smith, Ann", maker\nYan,Market maker\n'
    made = invites.add_people_in_bulk(pre.u["org"], "pre", pasted)
    assert [(i.name, i.role, i.max_uses) for i in made] == [
        ("Zoe", "trader", 1),
        ("Smith, Ann", "maker", 1),
        ("Yan", "maker", 1),
    ]
    assert len({i.batch for i in made}) == 1
    # a personal link joins as its own name, whatever is typed, once
    zoe = invites.join_by_invite(token(made[0]), "Somebody else")
    assert (zoe.user.first_name, zoe.username) == ("Zoe", "Zoe")
    refused(lambda: invites.join_by_invite(token(made[0]), ""), "invite_used_up", 409, "already used to join as Zoe")
    # a name kept for a personal link is not free for the open link
    refused(lambda: invites.join_by_invite(token(pre.invite), "yan"), "name_taken", 409, "personal invite")


def test_bad_lines_are_each_reported_and_nothing_is_made(pre):
    pasted = "Zoe\nBob\n" + "x" * 41 + "\nzoe\na,b,c\nYan,boss\nWu\x07\n"
    exc = refused(lambda: invites.add_people_in_bulk(pre.u["org"], "pre", pasted), "invalid_names", 422)
    assert exc.problems == [
        "line 3: That name is 41 characters long: use at most 40",
        "line 4: zoe is already on line 1",
        "line 5: expected a name, or name,role (found 3 fields)",
        "line 6: role 'boss' is not trader or maker",
        "line 7: A name cannot hold control or invisible characters (U+0007): type it again",
    ]
    exc = refused(lambda: invites.add_people_in_bulk(pre.u["org"], "pre", "Zoe\nBob"), "invalid_names", 422)
    assert exc.problems == ["line 2: bob has already joined this session"]
    refused(lambda: invites.add_people_in_bulk(pre.u["org"], "pre", "\n \n"), "invalid_names", 422, "at least one")
    refused(lambda: invites.add_people_in_bulk(pre.u["alice"], "pre", "Zoe"), "not_organiser", 403)


# ---------------------------------------------------------------- the join page


def test_one_name_and_one_click_from_the_link_to_the_floor(client, pre):
    page = client.get(link(pre.invite))
    assert page.status_code == 200 and b'name="name"' in page.content
    response = client.post(link(pre.invite), {"name": "Zoë"})
    assert response.status_code == 302 and response["Location"] == "/sessions/pre/"
    floor = client.get("/sessions/pre/")
    assert floor.status_code == 200 and floor.context["me"].username == "Zoe"
    # the link is now the way back to the floor
    assert client.get(link(pre.invite))["Location"] == "/sessions/pre/"
    assert client.post(link(pre.invite), {"name": "Again"})["Location"] == "/sessions/pre/"
    assert Participant.objects.filter(session_id="pre").count() == 6


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [("", 422, "Type your name"), ("Alice", 409, "alice has already joined"), ("a\x00b", 422, "control")],
)
def test_a_refused_name_is_shown_next_to_the_field(client, pre, name, status, says):
    before = world()
    response = client.post(link(pre.invite), {"name": name})
    assert response.status_code == status
    html = response.content.decode()
    assert 'id="join-error"' in html and says in response.context["error"]
    assert html.index('name="name"') < html.index('id="join-error"')
    assert world() == before


def test_revoked_used_up_closed_and_tampered_links_say_so(client, pre):
    assert client.get(link(pre.invite)[:-3]).status_code == 404
    assert "not valid" in client.get("/join/garbage").content.decode()
    other = invites.create_invite(pre.u["org"], "pre", "trader", 1)
    invites.join_by_invite(token(other), "Zoe")
    used = client.get(link(other))
    assert used.status_code == 409 and "All 1 places" in used.content.decode()
    invites.revoke_invite(pre.u["org"], pre.invite.id)
    before = world()
    gone = client.get(link(pre.invite))
    assert gone.status_code == 410 and b'name="name"' not in gone.content and "withdrawn" in gone.content.decode()
    posted = client.post(link(pre.invite), {"name": "Yan"})
    assert posted.status_code == 410 and "withdrawn" in posted.context["error"]
    assert world() == before
    fresh = invites.create_invite(pre.u["org"], "pre", "maker", 5)
    services.open_session(pre.u["org"], "pre")
    closed = client.get(link(fresh))
    assert closed.status_code == 409 and "joining closed" in closed.content.decode()


def test_a_returning_browser_continues_in_one_click_and_only_that_browser(client, pre):
    client.post(link(pre.invite), {"name": "Zoë"})
    client.post("/accounts/logout/")
    page = client.get(link(pre.invite))
    assert page.status_code == 200 and "Continue as Zoë" in page.content.decode()
    assert client.post(link(pre.invite), {"action": "continue"})["Location"] == "/sessions/pre/"
    assert client.get("/sessions/pre/").context["me"].username == "Zoe"
    # another browser is offered no one; a forged cookie counts for nothing
    other = Client()
    assert "Continue as" not in other.get(link(pre.invite)).content.decode()
    other.cookies["sc_joined_pre"] = client.cookies["sc_joined_pre"].value.replace(":", ":x", 1)
    assert other.post(link(pre.invite), {"action": "continue"}).status_code == 409
    # a cookie can never stand in for a password: an account that has one is not offered, even signed
    zoe = Participant.objects.get(username="Zoe").user_id
    assert client.cookies["sc_joined_pre"].value.startswith(f"{pre.invite.token_id}/{zoe}:")
    signed = HttpResponse()
    signed.set_signed_cookie("sc_joined_pre", f"{pre.invite.token_id}/{pre.u['alice'].pk}", salt=f"{_SALT}:pre")
    other.cookies["sc_joined_pre"] = signed.cookies["sc_joined_pre"].value
    assert other.post(link(pre.invite), {"action": "continue"}).status_code == 409
    # "Forget this browser" drops the offer
    client.post("/accounts/logout/")
    client.post(link(pre.invite), {"action": "forget"})
    assert "Continue as" not in client.get(link(pre.invite)).content.decode()


# ---------------------------------------------------------------- the organiser's page


def test_the_invites_page_is_the_organisers(client, users, pre):
    create_demo(users, "secret", open_it=False, visibility="participants")
    assert client.get("/sessions/pre/invites").status_code == 302  # sign in first
    client.force_login(users["alice"])
    assert client.get("/sessions/pre/invites").status_code == 403
    client.force_login(users["eve"])
    assert "visible to its participants only" in client.get("/sessions/secret/invites").content.decode()
    assert client.get("/sessions/nope/invites").status_code == 404
    assert client.get(f"/invites/{pre.invite.id}/qr.svg").status_code == 403  # she may watch pre, not invite
    client.force_login(users["org"])
    page = client.get("/sessions/pre/invites")
    assert page.status_code == 200
    assert f"http://testserver{link(pre.invite)}" in page.content.decode()


def test_create_revoke_and_bulk_from_the_page(client, pre):
    client.force_login(pre.u["org"])
    bad = client.post("/sessions/pre/invites/new", {"role": "trader", "max_uses": "0"})
    assert bad.status_code == 422 and "whole number from 1 to 1000" in bad.context["create_error"]
    made = client.post("/sessions/pre/invites/new", {"role": "maker", "max_uses": "12"}, headers={"HX-Request": "true"})
    assert made.status_code == 200 and "0 / 12" in made.content.decode()
    invite = Invite.objects.get(max_uses=12)
    row = client.post(f"/invites/{invite.id}/revoke", headers={"HX-Request": "true"})
    assert row.status_code == 200 and "revoked" in row.content.decode() and b"<tr" in row.content
    assert Invite.objects.get(pk=invite.pk).revoked_at is not None
    bulk = client.post("/sessions/pre/invites/bulk", {"names": "Zoe\nzoe\n", "role": "trader"})
    assert bulk.status_code == 422 and bulk.context["bulk_problems"] == ["line 2: zoe is already on line 1"]
    bulk = client.post(
        "/sessions/pre/invites/bulk", {"names": "Zoe\n=HYPERLINK(1),maker"}, headers={"HX-Request": "true"}
    )
    html = bulk.content.decode()
    assert bulk.status_code == 200 and "2 personal links made" in html and 'hx-swap-oob="true"' in html
    batch = Invite.objects.get(name="Zoe").batch
    download = client.get(f"/sessions/pre/invites.csv?batch={batch}")
    assert download["Content-Type"].startswith("text/csv") and "attachment" in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    zoe, formula = Invite.objects.get(name="Zoe"), Invite.objects.get(role="maker", batch=batch)
    assert rows == [
        ["name", "role", "link"],
        ["Zoe", "trader", f"http://testserver{link(zoe)}"],
        ["'=HYPERLINK(1)", "maker", f"http://testserver{link(formula)}"],
    ]
    # a used link leaves the CSV of links still to hand out
    invites.join_by_invite(token(zoe), "")
    assert len(list(csv.reader(io.StringIO(client.get("/sessions/pre/invites.csv").content.decode())))) == 2


def test_the_qr_code_is_segnos_svg_of_the_absolute_link(client, pre):
    client.force_login(pre.u["org"])
    response = client.get(f"/invites/{pre.invite.id}/qr.svg")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    url = f"http://testserver{link(pre.invite)}"
    expected = io.BytesIO()
    segno.make_qr(url, error="m").save(expected, kind="svg", scale=10, border=4)
    assert response.content == expected.getvalue() == qr_svg(url)
    assert response.content.lstrip().startswith(b"<?xml") and b"<svg" in response.content
    other = io.BytesIO()
    segno.make_qr(url + "x", error="m").save(other, kind="svg", scale=10, border=4)
    assert other.getvalue() != response.content
    client.force_login(pre.u["bob"])
    assert client.get(f"/invites/{pre.invite.id}/qr.svg").status_code == 403
    assert client.get("/invites/999/qr.svg").status_code == 404


# ---------------------------------------------------------------- the API and the admin


@pytest.fixture
def keys(users):
    return {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()}


def api_post(client: Client, path: str, body: dict, key: str):
    return client.post(
        f"/api/v1{path}", json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )


def test_the_api_makes_links_and_personal_links(client, pre, keys):
    made = api_post(client, "/sessions/pre/invites", {"role": "maker", "max_uses": 2}, keys["org"])
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["role"], body["max_uses"], body["uses"], body["name"]) == ("maker", 2, 0, "")
    assert body["url"].startswith("http://testserver/join/")
    assert Client().post(body["url"].removeprefix("http://testserver"), {"name": "Bot"}).status_code == 302
    bulk = api_post(client, "/sessions/pre/invites/bulk", {"names": ["Zoe", "Yan"]}, keys["org"])
    assert bulk.status_code == 201 and [i["name"] for i in bulk.json()["invites"]] == ["Zoe", "Yan"]
    before = world()
    for path, body, who, status, code in [
        ("/sessions/pre/invites", {"role": "trader", "max_uses": 3}, "alice", 403, "not_organiser"),
        ("/sessions/pre/invites", {"role": "trader", "max_uses": 0}, "org", 422, "invalid_limit"),
        ("/sessions/pre/invites", {"role": "trader", "max_uses": 3, "x": 1}, "org", 422, "invalid_request"),
        ("/sessions/nope/invites", {"role": "trader", "max_uses": 3}, "org", 404, "session_not_found"),
        ("/sessions/pre/invites/bulk", {"names": ["Zoe", "Wu", "wu"]}, "org", 422, "invalid_names"),
        ("/sessions/pre/invites/bulk", {"names": []}, "org", 422, "invalid_request"),
    ]:
        response = api_post(client, path, body, keys[who])
        assert response.status_code == status, (path, body, response.content)
        assert set(response.json()) == {"code", "message"} and response.json()["code"] == code
    assert world() == before
    assert (
        "line 1: Zoe has a personal invite"
        in api_post(client, "/sessions/pre/invites/bulk", {"names": ["Zoe"]}, keys["org"]).json()["message"]
    )
    services.open_session(pre.u["org"], "pre")
    late = api_post(client, "/sessions/pre/invites", {"role": "trader", "max_uses": 3}, keys["org"])
    assert (late.status_code, late.json()["code"]) == (409, "session_not_joinable")


def test_the_admin_shows_invites_and_revokes_through_the_service(client, pre):
    org = pre.u["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    client.force_login(org)
    assert client.get("/admin/markets/invite/").status_code == 200
    assert client.get(f"/admin/markets/invite/{pre.invite.id}/change/").status_code == 200
    response = client.post(
        "/admin/markets/invite/", {"action": "revoke_invites", "_selected_action": [pre.invite.id]}, follow=True
    )
    assert "revoked" in response.content.decode()
    assert Invite.objects.get(pk=pre.invite.pk).revoked_at is not None
    assert client.get("/admin/markets/invite/add/").status_code == 403


# ---------------------------------------------------------------- two browsers, one last place


@pytest.mark.django_db(transaction=True)
def test_two_browsers_taking_the_last_place_at_once_one_wins_nothing_is_left_of_the_other(users):
    if connection.vendor == "sqlite":
        assert "memory" not in str(settings.DATABASES["default"]["NAME"]), "needs a file database"
    create_demo(users, "pre", open_it=False)
    invite = invites.create_invite(users["org"], "pre", "trader", 3)
    invites.join_by_invite(token(invite), "First")
    before_users = User.objects.count()
    barrier = threading.Barrier(4)
    results: list = [None] * 4

    def browser(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            response = Client().post(link(invite), {"name": f"Racer {i}"})
            results[i] = (response.status_code, response.get("Location") or response.context["error"])
        except BaseException as exc:  # asserted on below
            results[i] = ("error", repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=browser, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(status for status, _ in results) == [302, 302, 409, 409], results
    for status, said in results:
        assert said == "/sessions/pre/" if status == 302 else "All 3 places of this invite link are taken" in said
    assert Invite.objects.get(pk=invite.pk).uses == 3
    assert User.objects.count() == before_users + 2
    assert Participant.objects.filter(session_id="pre", username__startswith="Racer").count() == 2
    assert Event.objects.filter(type="ParticipantJoined").count() == 4 + 1 + 1 + 2


def test_the_floors_own_join_url_is_untouched():
    from django.urls import reverse

    assert reverse("markets:join", args=["pre"]) == "/sessions/pre/join"
    assert reverse("markets:invite_join", args=["a.b"]) == "/join/a.b"
    assert reverse("markets:invites", args=["pre"]) == "/sessions/pre/invites"


@pytest.mark.django_db(transaction=True)
def test_the_same_name_joining_two_sessions_at_once_gets_two_usernames(users):
    """Each join holds only its own session's lock, so two can pick the same username at one instant:
    the database refuses the second, which runs again and takes the next suffix."""
    links = []
    for sid in ("one", "two"):
        create_demo(users, sid, open_it=False)
        links.append(token(invites.create_invite(users["org"], sid, "trader", 5)))
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def join(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = invites.join_by_invite(links[i], "Zoe").username
        except BaseException as exc:  # asserted on below
            results[i] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=join, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["Zoe", "Zoe-2"], results


def test_a_form_sent_after_the_session_opened_says_why_nothing_was_made(client, pre):
    client.force_login(pre.u["org"])
    services.open_session(pre.u["org"], "pre")
    htmx = {"HX-Request": "true"}
    made = client.post("/sessions/pre/invites/new", {"role": "trader", "max_uses": "3"}, headers=htmx)
    assert "joining closed when it opened" in made.content.decode()
    bulk = client.post("/sessions/pre/invites/bulk", {"names": "Zoe"}, headers=htmx)
    assert "joining closed when it opened" in bulk.content.decode()
    page = client.get("/sessions/pre/invites")
    assert page.status_code == 200 and "let nobody in any more" in page.content.decode()
    assert Invite.objects.count() == 1
