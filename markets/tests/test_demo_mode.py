"""Demo mode lets people act as the demo's own participants and nothing more: never a staff or superuser
account, never an account that is not the demo's, and by default only from the machine running it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from markets import demo
from markets.models import Session

pytestmark = pytest.mark.django_db

ROOM = "192.168.1.20"  # a laptop in the classroom


@pytest.fixture
def seeded(settings):
    settings.DEMO_MODE = True
    call_command("seed_demo", stdout=StringIO())
    User = get_user_model()
    User.objects.create_superuser("root", password="pw")
    staff = User.objects.create_user("helper", password="pw", is_staff=True)
    staff.groups.add(Group.objects.get(name=demo.DEMO_GROUP))  # even inside the group, staff is refused
    User.objects.create_user("stranger", password="pw")
    return User


def switch(client: Client, username: str, **extra):
    return client.post(reverse("markets:demo_switch"), {"username": username, "next": "/portfolio/"}, **extra)


def test_the_switcher_is_off_outside_demo_mode(users):
    assert Client().post(reverse("markets:demo_switch"), {"username": "alice"}).status_code == 404


def test_only_the_demos_own_participants_are_offered_and_accepted(seeded):
    client = Client()
    page = client.get(reverse("login")).content.decode()
    assert "Demo: act as" in page
    offered = [
        name for name in ("organiser", "alice", "bob", "mm", "root", "helper", "stranger") if f'value="{name}"' in page
    ]
    assert offered == ["organiser", "alice", "bob", "mm"]
    for name in ("root", "helper", "stranger", "nobody"):
        response = switch(client, name)
        assert (
            response.status_code == 403 and "signs in as the demo&#x27;s participants only" in response.content.decode()
        )
        assert "_auth_user_id" not in client.session
    response = switch(client, "organiser")
    assert response.status_code == 302 and response["Location"] == "/portfolio/"
    assert client.get("/admin/").status_code == 302  # the demo organiser is not staff: the admin is closed
    # ...but runs sessions: it may create one.
    assert client.get("/").context["can_create"] is True


def test_the_switcher_answers_this_machine_only_unless_opened(seeded, settings):
    client = Client(REMOTE_ADDR=ROOM)
    page = client.get(reverse("login")).content.decode()
    assert "Demo: act as" not in page and 'value="alice"' not in page  # no usernames to strangers
    response = switch(client, "alice")
    assert response.status_code == 403 and "answers only on the machine that runs the demo" in response.content.decode()
    settings.DEMO_OPEN_TO_NETWORK = True
    assert switch(client, "alice").status_code == 302
    assert Client(REMOTE_ADDR="::1").post(reverse("markets:demo_switch"), {"username": "bob"}).status_code == 302


def test_acting_as_from_the_sign_in_page_goes_where_it_was_asked_to(seeded):
    client = Client()
    login_page = f"{reverse('login')}?next=/sessions/demo/"
    response = client.post(reverse("markets:demo_switch"), {"username": "alice", "next": login_page})
    assert response["Location"] == "/sessions/demo/"
    for evil in ("//evil.example/", "https://evil.example/", f"{reverse('login')}?next=//evil.example/"):
        assert client.post(reverse("markets:demo_switch"), {"username": "bob", "next": evil})["Location"] == "/"


def test_seeding_twice_converges_an_old_demo_whose_organiser_was_a_superuser(seeded):
    User = seeded
    User.objects.filter(username="organiser").update(is_superuser=True, is_staff=True)
    call_command("seed_demo", stdout=StringIO())
    organiser = User.objects.get(username="organiser")
    assert not organiser.is_superuser and not organiser.is_staff
    assert organiser.has_perm("markets.add_session")
    assert Session.objects.count() == 1
