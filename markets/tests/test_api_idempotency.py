"""Idempotency-Key on every POST: a retry returns the first answer and executes nothing twice,
also when the two requests race in two threads against the real database."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from django.db import connection
from django.test import Client

from conftest import create_demo
from ledger.models import Event
from markets import tokens
from markets.api import idempotency as api_module
from markets.models import RFQ, IdempotencyRecord, Trade

RFQ_BODY = {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "10"}


def post(client: Client, key: str, path: str, body=None, idem: str | None = None):
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    data = "" if body is None else json.dumps(body)
    return client.post(f"/api/v1{path}", data=data, content_type="application/json", headers=headers)


@pytest.fixture
def keys(users) -> dict[str, str]:
    return {name: tokens.create_token(user)[1] for name, user in users.items()}


@pytest.mark.django_db
def test_a_retry_returns_the_first_response_and_runs_once(client, demo, keys):
    before = Event.objects.count()
    first = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="rfq-1")
    assert first.status_code == 201
    assert Event.objects.count() == before + 1
    again = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="rfq-1")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == first["Content-Type"]
    assert Event.objects.count() == before + 1
    assert RFQ.objects.count() == 1
    other = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="rfq-2")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


@pytest.mark.django_db
def test_every_post_endpoint_is_idempotent(client, users, keys):
    counter = itertools.count()

    def twice(who, path, body=None, status=200):
        key = f"k-{next(counter)}"
        first = post(client, keys[who], path, body, idem=key)
        assert first.status_code == status, first.content
        count = Event.objects.count()
        second = post(client, keys[who], path, body, idem=key)
        assert (second.status_code, second.content) == (first.status_code, first.content)
        assert Event.objects.count() == count
        return first.json()

    seed = {"session_id": "demo", "legs": ["AAPL", "NVDA", "META", "ORCL"], "q": [100, 60, 80, 120]}
    twice("org", "/sessions", seed, 201)
    twice("alice", "/sessions/demo/participants", {"role": "trader"}, 201)
    twice("org", "/sessions/demo/participants", {"role": "maker", "username": "mm"}, 201)
    twice("org", "/sessions/demo/open")
    rfq = twice("alice", "/sessions/demo/rfq", RFQ_BODY, 201)
    quote = twice("mm", f"/rfq/{rfq['id']}/quote", {"rate": "0.62"}, 201)
    twice("mm", f"/quotes/{quote['id']}/withdraw")
    quote = twice("mm", f"/rfq/{rfq['id']}/quote", {"rate": "0.63"}, 201)
    trade = twice("alice", f"/quotes/{quote['id']}/accept", None, 201)
    assert trade["get_qty"] == "6.300000"
    rfq = twice("alice", "/sessions/demo/rfq", RFQ_BODY | {"quantity": "1"}, 201)
    twice("alice", f"/rfq/{rfq['id']}/cancel")
    twice("org", "/sessions/demo/settle", {"prices": {"AAPL": 1, "NVDA": 2, "META": 3, "ORCL": 4}})
    assert Trade.objects.count() == 1


@pytest.mark.django_db
def test_errors_are_replayed_too_and_nothing_runs(client, demo, keys):
    before = Event.objects.count()
    first = post(client, keys["bob"], "/rfq/1/quote", {"rate": 1}, idem="q")
    assert first.status_code == 404
    # The RFQ now exists, but the key's answer stays the first one: the request is not run again.
    post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY)
    count = Event.objects.count()
    again = post(client, keys["bob"], "/rfq/1/quote", {"rate": 1}, idem="q")
    assert (again.status_code, again.content) == (404, first.content)
    assert Event.objects.count() == count == before + 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_refused(client, demo, keys):
    assert post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="k").status_code == 201
    count = Event.objects.count()
    changed = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY | {"quantity": "11"}, idem="k")
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    other_path = post(client, keys["alice"], "/sessions/demo/open", None, idem="k")
    assert other_path.status_code == 422 and other_path.json()["code"] == "idempotency_key_reused"
    assert Event.objects.count() == count


@pytest.mark.django_db
def test_keys_belong_to_one_user(client, demo, keys):
    mine = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="shared")
    theirs = post(client, keys["bob"], "/sessions/demo/rfq", RFQ_BODY, idem="shared")
    assert mine.status_code == theirs.status_code == 201
    assert (mine.json()["taker"], theirs.json()["taker"]) == ("alice", "bob")
    assert RFQ.objects.count() == 2


@pytest.mark.django_db
def test_bad_keys_and_missing_auth(client, demo, keys):
    before = Event.objects.count()
    for bad in ("", " ", "x" * 256, "naïve"):
        response = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem=bad)
        assert response.status_code == 422 and response.json()["code"] == "invalid_idempotency_key", bad
    anonymous = client.post(
        "/api/v1/sessions/demo/rfq",
        data=json.dumps(RFQ_BODY),
        content_type="application/json",
        headers={"Idempotency-Key": "anon"},
    )
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    assert Event.objects.count() == before
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_a_server_error_releases_the_key(client, demo, keys, monkeypatch):
    from markets import services

    real = services.request_rfq
    monkeypatch.setattr(services, "request_rfq", lambda *a, **k: 1 / 0)
    failed = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="retry-me")
    assert failed.status_code == 500 and failed.json()["code"] == "internal_error"
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.setattr(services, "request_rfq", real)
    retried = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="retry-me")
    assert retried.status_code == 201
    assert RFQ.objects.count() == 1


@pytest.mark.django_db
def test_a_key_still_running_elsewhere_times_out_as_409(client, demo, keys, users, monkeypatch):
    from django.utils import timezone

    IdempotencyRecord.objects.create(
        user=users["alice"],
        key="stuck",
        fingerprint=api_module._fingerprint(
            _request("/api/v1/sessions/demo/rfq", json.dumps(RFQ_BODY)), json.dumps(RFQ_BODY).encode()
        ),
        created_at=timezone.now(),
    )
    monkeypatch.setattr(api_module, "IDEMPOTENCY_WAIT_SECONDS", 0.1)
    before = Event.objects.count()
    response = post(client, keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="stuck")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"
    assert Event.objects.count() == before


def _request(path: str, body: str):
    from django.test import RequestFactory

    return RequestFactory().post(path, data=body, content_type="application/json")


# ---------------------------------------------------------------- real races


def _race(n: int, fn) -> list:
    """Run fn(i) in n threads released together; each thread closes its own DB connection."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_racing_rfqs_with_one_key_make_one_rfq(users, keys):
    create_demo(users)
    before = Event.objects.count()

    def request(i: int):
        response = post(Client(), keys["alice"], "/sessions/demo/rfq", RFQ_BODY, idem="race-rfq")
        return response.status_code, response.content, response.get("Idempotent-Replayed")

    results = _race(4, request)
    assert {status for status, _, _ in results} == {201}
    assert len({content for _, content, _ in results}) == 1
    assert sorted(str(replayed) for _, _, replayed in results) == ["None", "true", "true", "true"]
    assert RFQ.objects.count() == 1
    assert Event.objects.count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_racing_accepts_with_one_key_make_one_trade(users, keys):
    create_demo(users)
    first = Client()
    rfq = post(first, keys["alice"], "/sessions/demo/rfq", RFQ_BODY).json()
    quote = post(first, keys["mm"], f"/rfq/{rfq['id']}/quote", {"rate": "0.62"}).json()
    before = Event.objects.count()

    def request(i: int):
        response = post(Client(), keys["alice"], f"/quotes/{quote['id']}/accept", idem="race-accept")
        return response.status_code, response.content

    results = _race(2, request)
    assert [status for status, _ in results] == [201, 201]
    assert results[0][1] == results[1][1]
    assert Trade.objects.count() == 1
    assert Event.objects.count() == before + 1
    assert json.loads(results[0][1])["get_qty"] == "6.200000"


@pytest.mark.django_db(transaction=True)
def test_racing_accepts_with_different_keys_still_trade_once(users, keys):
    create_demo(users)
    first = Client()
    rfq = post(first, keys["alice"], "/sessions/demo/rfq", RFQ_BODY).json()
    quote = post(first, keys["mm"], f"/rfq/{rfq['id']}/quote", {"rate": "0.62"}).json()

    def request(i: int):
        response = post(Client(), keys["alice"], f"/quotes/{quote['id']}/accept", idem=f"key-{i}")
        return response.status_code, response.json()

    results = _race(2, request)
    assert sorted(status for status, _ in results) == [201, 409]
    assert next(body for status, body in results if status == 409)["code"] == "rfq_closed"
    assert Trade.objects.count() == 1
