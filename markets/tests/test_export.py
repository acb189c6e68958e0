"""Data out: a session built through the services (join, open, RFQs, quotes, accepts, settlement at the
oracle's fixing) exported as CSV by `manage.py export`, the API and the floor's downloads. The tables parse,
agree with the API's answers string for string, rehash with the chain, and reconcile to q.S_t2 exactly;
bad requests are refused at each edge with nothing written."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import subprocess
import sys
import zipfile
from decimal import Decimal, localcontext
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import create_demo, make_user
from ledger import chain, clock
from ledger.models import Event
from markets import domain, services, tokens
from markets.errors import DomainError
from markets.models import Session, Settlement
from markets.selectors import export
from oracle.models import Tick
from sessionsite.testing import BASE_DIR, child_env

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 1, 15, 0, 0, 123456, tzinfo=dt.UTC)
PRICES = {"AAPL": "190.1", "NVDA": "480.2", "META": "350.000001", "ORCL": "104.3"}
LEGS = list(PRICES)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def trade(users, taker: str, maker: str, give: str, get: str, qty: str, rate: str, session_id: str = "demo"):
    rfq = services.request_rfq(users[taker], session_id, give, get, qty)
    return services.accept_quote(users[taker], services.provide_quote(users[maker], rfq.id, rate).id)


@pytest.fixture
def traded(users) -> Session:
    """The seed's session with three trades, a withdrawn quote and a cancelled RFQ (events that move nothing)."""
    clock.set_time(T0)
    create_demo(users)
    trade(users, "alice", "mm", "AAPL", "NVDA", "10", "0.62")
    clock.set_time(at(1.5))
    trade(users, "bob", "mm2", "META", "ORCL", "5", "1.333333")
    rfq = services.request_rfq(users["bob"], "demo", "AAPL", "META", "1")
    services.withdraw_quote(users["mm"], services.provide_quote(users["mm"], rfq.id, "1.1").id)
    services.cancel_rfq(users["bob"], rfq.id)
    clock.set_time(at(2.000001))
    trade(users, "alice", "mm2", "NVDA", "META", "2.5", "0.98765432")
    return Session.objects.get(id="demo")


@pytest.fixture
def settled(users, traded) -> Session:
    """Settled by the organiser at the oracle's fixing (rule `last`): an older tick per leg is not used."""
    for seconds, bump in ((3, 1), (4, 0)):
        Tick.objects.bulk_create(
            Tick(session_id="demo", symbol=leg, at=at(seconds), price=domain.parse_price(p) + bump, source="test")
            for leg, p in PRICES.items()
        )
    Tick.objects.create(session_id="other", symbol="AAPL", at=at(4), price=1, source="test")  # not demo's
    clock.set_time(at(10))
    services.settle_session(users["org"], "demo")
    return Session.objects.get(id="demo")


def table(name: str, session_id: str = "demo") -> list[dict[str, str]]:
    text, count = export.csv_text(export.SessionExport(export.find_session(session_id)).table(name))
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == count
    return rows


def api_client(users, who: str) -> tuple[Client, dict[str, str]]:
    return Client(), {"Authorization": f"Bearer {tokens.create_token(users[who], name='tests')[1]}"}


def api_get(users, who: str, path: str):
    client, headers = api_client(users, who)
    return client.get(f"/api/v1{path}", headers=headers)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code and body["message"], body


def members(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# ---------------------------------------------------------------- the tables


def test_every_table_parses_with_exact_decimal_strings(settled):
    shapes = {
        "trades": {"give_qty": 6, "get_qty": 6, "rate": 8},
        "holdings": {"quantity": 6},
        "ticks": {"price": 6},
        "payouts": {"payout": 12, **{f"x:{leg}": 6 for leg in LEGS}},
    }
    for name in export.TABLES:
        rows = table(name)
        assert rows or name in ("orders", "fills", "actions"), name  # no orders in an RFQ session, no actions here
        for column, places in shapes.get(name, {}).items():
            for row in rows:
                whole, dot, fraction = row[column].partition(".")
                assert whole.isdigit() and dot and len(fraction) == places, (name, column, row[column])
    times = [r["at"] for r in table("events")] + [r["executed_at"] for r in table("trades")]
    assert all(t.endswith("Z") and len(t) == 27 for t in times)
    assert table("events")[0]["at"] == "2030-06-01T15:00:00.123456Z"


def test_trades_equal_the_apis_trades_field_for_field(users, settled):
    answer = api_get(users, "eve", "/sessions/demo/trades").json()
    rows = table("trades")
    assert len(rows) == len(answer) == 3
    for row, api in zip(rows, answer, strict=True):
        for field in ("taker", "maker", "give_leg", "give_qty", "get_leg", "get_qty", "rate"):
            assert row[field] == api[field], field
        for field in ("id", "quote_id", "rfq_id", "seq"):
            assert row[field] == str(api[field]), field
        # The API's JSON encoder writes milliseconds; the export keeps the ledger's microseconds.
        executed = dt.datetime.fromisoformat(row["executed_at"])
        assert dt.datetime.fromisoformat(api["executed_at"]) == executed.replace(
            microsecond=executed.microsecond // 1000 * 1000
        )
    assert [(r["taker_id"], r["maker_id"]) for r in rows] == [
        (str(users["alice"].pk), str(users["mm"].pk)),
        (str(users["bob"].pk), str(users["mm2"].pk)),
        (str(users["alice"].pk), str(users["mm2"].pk)),
    ]
    assert rows[1]["executed_at"] == "2030-06-01T15:00:01.623456Z"


def test_holdings_over_time_start_at_the_allocation_and_end_at_the_apis_allocations(users, settled):
    rows = table("holdings")
    steps = list(dict.fromkeys((r["seq"], r["event"]) for r in rows))
    assert [kind for _, kind in steps] == ["InitialAllocationAssigned", *["TradeExecuted"] * 3, "SessionSettled"]
    assert all(sum(1 for r in rows if r["seq"] == seq) == 4 * 4 for seq, _ in steps)  # 4 holders x 4 legs
    first = {(r["name"], r["leg"]): r["quantity"] for r in rows if r["seq"] == steps[0][0]}
    last = {(r["name"], r["leg"]): r["quantity"] for r in rows if r["seq"] == steps[-1][0]}
    allocations = api_get(users, "alice", "/sessions/demo/allocations").json()
    assert last == {(h["username"], leg): x for h in allocations["holdings"] for leg, x in h["x"].items()}
    assert first == {(h["username"], leg): x for h in allocations["holdings"] for leg, x in h["initial"].items()}
    # Between two trades only the two parties' legs moved, and each leg still sums to q.
    for seq, _ in steps:
        for k, leg in enumerate(LEGS):
            held = sum(Decimal(r["quantity"]) for r in rows if r["seq"] == seq and r["leg"] == leg)
            assert held == Decimal(domain.qty_str(settled.q[k]))
    assert {r["user_id"] for r in rows} == {str(users[n].pk) for n in ("alice", "bob", "mm", "mm2")}


def test_ticks_are_the_sessions_own(settled):
    rows = table("ticks")
    assert len(rows) == 8 and {r["leg"] for r in rows} == set(LEGS)
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    newest = {r["leg"]: r["price"] for r in rows[4:]}
    assert newest == {leg: domain.price_str(domain.parse_price(p)) for leg, p in PRICES.items()}
    assert rows[0]["ts"] == "2030-06-01T15:00:03.123456Z" and rows[0]["source"] == "test"


def test_payouts_sum_to_q_times_the_fixing_exactly(users, settled):
    rows = table("payouts")
    people, total = rows[:-1], rows[-1]
    expected = sum(Decimal(q) * Decimal(PRICES[leg]) for leg, q in zip(LEGS, settled.q_display, strict=True))
    assert sum(Decimal(r["payout"]) for r in people) == expected == Decimal(total["payout"])
    assert total["name"] == "total" and total["payout"] == Settlement.objects.get().expected
    assert [total[f"x:{leg}"] for leg in LEGS] == [domain.qty_str(q) for q in settled.q]
    answer = api_get(users, "bob", "/sessions/demo/payouts").json()["payouts"]
    assert sorted((r["username"], r["name"], r["role"], r["payout"]) for r in people) == [
        (p["username"], p["name"], p["role"], p["amount"]) for p in answer
    ]
    for r in people:  # each payout is that row's x . S_t2
        assert Decimal(r["payout"]) == sum(Decimal(r[f"x:{leg}"]) * Decimal(PRICES[leg]) for leg in LEGS)


def test_reconciliation_adds_up_to_each_payout_and_to_q_times_the_fixing(users, settled):
    rows = table("reconciliation")
    legs = [r for r in rows if r["kind"] == "leg"]
    people = [r for r in rows if r["kind"] == "participant"]
    assert len(legs) == 16 and len(people) == 4
    for person in people:
        mine = [r for r in legs if r["user_id"] == person["user_id"]]
        assert sum(Decimal(r["x_i*S_t2"]) for r in mine) == Decimal(person["payout"])
        assert person["payout"] == person["expected"] and person["equal"] == "true"
        for r in mine:
            assert Decimal(r["x_i"]) * Decimal(r["S_t2"]) == Decimal(r["x_i*S_t2"])
    (total,) = [r for r in rows if r["kind"] == "total"]
    assert Decimal(total["payout"]) == sum(Decimal(p["payout"]) for p in people) == Decimal(total["expected"])
    assert total["equal"] == "true" and total["expected"] == Settlement.objects.get().expected
    basket = [r for r in rows if r["kind"] == "basket"]
    assert sum(Decimal(r["x_i*S_t2"]) for r in basket) == Decimal(total["expected"])
    (recorded,) = [r for r in rows if r["kind"] == "recorded"]
    assert recorded["equal"] == "true"

    # S_t2 came from the newest tick of each leg, and the report names it.
    fixing = Settlement.objects.get().fixing
    newest = {t.symbol: t for t in Tick.objects.filter(session_id="demo").order_by("at", "id")}
    for r in legs:
        assert r["tick_ids"] == str(newest[r["leg"]].id) == " ".join(map(str, fixing["ticks"][r["leg"]]))
        assert (
            r["S_t2"] == domain.price_str(newest[r["leg"]].price)
            and r["fixing"] == "last at 2030-06-01T15:00:10.123456Z"
        )

    # x_i was made by the allocation and by the trades that moved this participant's leg, no others.
    allocation = Event.objects.get(type="InitialAllocationAssigned").seq
    trades = {t["seq"]: t for t in table("trades")}
    for r in legs:
        seqs = r["seqs"].split()
        assert seqs[0] == str(allocation)
        touching = [
            s for s, t in trades.items()
            if r["user_id"] in (t["taker_id"], t["maker_id"]) and r["leg"] in (t["give_leg"], t["get_leg"])
        ]  # fmt: skip
        assert seqs[1:] == touching
    alice_nvda = next(r for r in legs if r["name"] == "alice" and r["leg"] == "NVDA")
    assert len(alice_nvda["seqs"].split()) == 3  # allocated, got NVDA from mm, gave NVDA to mm2


def test_the_event_log_rehashes_with_the_chain(users, settled):
    rows = table("events")
    assert [int(r["version"]) for r in rows] == list(range(1, len(rows) + 1))
    walked = [
        (int(r["seq"]), int(r["version"]), r["type"], r["data"], r["at"], r["prev_hash"], r["hash"]) for r in rows
    ]
    assert chain.walk("session-demo", walked) == (len(rows), None)
    prev = chain.GENESIS
    for r in rows:
        assert r["prev_hash"] == prev
        assert chain.compute_hash(prev, r["stream"], int(r["version"]), r["type"], r["at"], r["data"]) == r["hash"]
        assert chain.canonical_json(json.loads(r["data"])) == r["data"]
        prev = r["hash"]
    # Who acted, by immutable user id, where the event's data names them.
    kinds = {r["type"]: r["actor_user_id"] for r in rows}
    assert kinds["SessionCreated"] == str(Session.objects.get().created_by_id)
    assert kinds["TradeExecuted"] == str(users["alice"].pk)
    assert kinds["SessionOpened"] == "" and kinds["SessionSettled"] == ""


def test_a_trade_during_an_export_is_in_none_of_its_tables(users, traded):
    snapshot = export.SessionExport(traded)
    trade(users, "bob", "mm", "ORCL", "AAPL", "1", "0.5")
    counts = {name: export.csv_text(snapshot.table(name))[1] for name in ("events", "trades", "holdings")}
    assert counts["trades"] == 3 and counts["holdings"] == 4 * 16
    assert counts["events"] == Event.objects.filter(stream="session-demo").count() - 3  # RFQ, quote, trade
    assert export.csv_text(export.SessionExport(Session.objects.get()).table("trades"))[1] == 4


# ---------------------------------------------------------------- manage.py export


def export_cli(*args: str) -> list[str]:
    out = StringIO()
    call_command("export", *args, stdout=out, stderr=StringIO())
    return out.getvalue().splitlines()


def test_the_command_writes_every_table_with_its_row_count(settled, tmp_path):
    lines = export_cli("demo", "--out", str(tmp_path / "x"))
    assert [line.split(": ")[0] for line in lines] == [str(tmp_path / "x" / f"{t}.csv") for t in export.TABLES]
    for name, line in zip(export.TABLES, lines, strict=True):
        text = (tmp_path / "x" / f"{name}.csv").read_bytes().decode()
        assert text == export.csv_text(export.SessionExport(settled).table(name))[0]
        assert line.endswith(f": {len(text.splitlines()) - 1} rows")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(f"{t}.csv" for t in export.TABLES)

    assert export_cli("demo", "--out", str(tmp_path / "y"), "--table", "trades", "--table", "events.csv") == [
        f"{tmp_path / 'y' / 'trades.csv'}: 3 rows",
        f"{tmp_path / 'y' / 'events.csv'}: {Event.objects.count()} rows",
    ]
    zipped = export_cli("demo", "--out", str(tmp_path / "z"), "--zip")
    assert zipped[-1] == f"wrote {tmp_path / 'z' / 'demo-export.zip'}" and len(zipped) == len(export.TABLES) + 1
    files = members((tmp_path / "z" / "demo-export.zip").read_bytes())
    assert files == {f"{t}.csv": (tmp_path / "x" / f"{t}.csv").read_bytes() for t in export.TABLES}


def test_the_command_on_an_open_session_skips_what_needs_a_settlement(traded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = export_cli("demo")
    events = Event.objects.filter(stream="session-demo").count()
    assert lines[:4] == [
        f"export-demo/{t}.csv: {n} rows" for t, n in (("events", events), ("trades", 3), ("holdings", 64), ("ticks", 0))
    ]
    assert lines[4:7] == [
        "export-demo/orders.csv: 0 rows",
        "export-demo/fills.csv: 0 rows",
        "export-demo/actions.csv: 0 rows",
    ]
    assert lines[7:] == [
        "payouts.csv: skipped (demo is not settled)",
        "reconciliation.csv: skipped (demo is not settled)",
        "fixing.csv: skipped (demo is not settled)",
    ]
    assert sorted(p.name for p in (tmp_path / "export-demo").iterdir()) == [
        "actions.csv",
        "events.csv",
        "fills.csv",
        "holdings.csv",
        "orders.csv",
        "ticks.csv",
        "trades.csv",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "Unknown session 'nosuch'"),
        (["demo", "--table", "quotes"], "Unknown table 'quotes': export one of events, trades, holdings"),
        (
            ["demo", "--table", "events", "payouts"],
            "Session demo is not settled (open): payouts.csv exists once it settles",
        ),
        (["demo", "--zip", "--table", "reconciliation"], "not settled"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line_and_writes_nothing(traded, tmp_path, args, message):
    with pytest.raises(CommandError) as info:
        export_cli(*args, "--out", str(tmp_path / "out"))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_the_command_refuses_a_file_where_its_directory_goes(traded, tmp_path):
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(CommandError, match="exists and is not a directory"):
        export_cli("demo", "--out", str(tmp_path / "taken"))
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # no transaction held open: the child reads the same file
def test_manage_py_export_exits_non_zero_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "export", "nosuch", "--out", str(tmp_path / "out")],
        cwd=BASE_DIR, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["CommandError: Unknown session 'nosuch'"]
    assert done.stdout == "" and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the API


def test_the_api_serves_each_table_and_the_zip(users, settled):
    for name in export.TABLES:
        response = api_get(users, "org", f"/sessions/demo/export/{name}.csv")  # the organiser: every table
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == f'attachment; filename="demo-{name}.csv"'
        assert response.content.decode() == export.csv_text(export.SessionExport(settled).table(name))[0]
    response = api_get(users, "alice", "/sessions/demo/export.zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="demo-export.zip"'
    assert sorted(members(response.content)) == sorted(f"{t}.csv" for t in export.FOR_EVERY_VIEWER)
    assert response.content == api_get(users, "bob", "/sessions/demo/export.zip").content  # the same bytes


def test_the_api_refuses_with_codes(users, traded):
    before = Event.objects.count()
    assert_error(api_get(users, "alice", "/sessions/demo/export/quotes.csv"), 404, "unknown_table")
    assert_error(api_get(users, "alice", "/sessions/demo/export/payouts.csv"), 409, "not_settled")
    assert_error(api_get(users, "org", "/sessions/demo/export/reconciliation.csv"), 409, "not_settled")
    assert_error(api_get(users, "alice", "/sessions/demo/export/reconciliation.csv"), 403, "not_organiser")
    assert_error(api_get(users, "alice", "/sessions/nosuch/export/events.csv"), 404, "session_not_found")
    assert_error(api_get(users, "alice", "/sessions/nosuch/export.zip"), 404, "session_not_found")
    assert_error(Client().get("/api/v1/sessions/demo/export/events.csv"), 401, "unauthenticated")
    open_zip = members(api_get(users, "org", "/sessions/demo/export.zip").content)
    assert sorted(open_zip) == [
        "actions.csv",
        "events.csv",
        "fills.csv",
        "holdings.csv",
        "orders.csv",
        "ticks.csv",
        "trades.csv",
    ]
    assert Event.objects.count() == before


def test_a_participants_only_session_is_exported_to_its_participants_only(users):
    create_demo(users, "closed", visibility="participants")
    assert_error(api_get(users, "eve", "/sessions/closed/export/events.csv"), 403, "not_visible")
    assert_error(api_get(users, "eve", "/sessions/closed/export.zip"), 403, "not_visible")
    assert api_get(users, "mm", "/sessions/closed/export/events.csv").status_code == 200


# ---------------------------------------------------------------- the floor's downloads


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_organiser_downloads_everything_a_participant_the_log_trades_ticks_and_payouts(users, settled):
    for name in export.TABLES:
        response = browser(users["org"]).get(reverse("markets:export_table", args=["demo", name]))
        assert (
            response.status_code == 200 and response["Content-Disposition"] == f'attachment; filename="demo-{name}.csv"'
        )
        assert response.content.decode() == export.csv_text(export.SessionExport(settled).table(name))[0]
        refused = browser(users["alice"]).get(reverse("markets:export_table", args=["demo", name]))
        assert refused.status_code == (200 if name in export.FOR_EVERY_VIEWER else 403), name
    assert (
        "organiser"
        in browser(users["alice"]).get(reverse("markets:export_table", args=["demo", "holdings"])).content.decode()
    )
    org_zip = members(browser(users["org"]).get(reverse("markets:export_zip", args=["demo"])).content)
    mine = members(browser(users["alice"]).get(reverse("markets:export_zip", args=["demo"])).content)
    assert sorted(org_zip) == sorted(f"{t}.csv" for t in export.TABLES)
    assert sorted(mine) == sorted(f"{t}.csv" for t in export.FOR_EVERY_VIEWER)
    assert all(mine[name] == org_zip[name] for name in mine)
    staff = make_user("auditor")
    staff.is_staff = True
    staff.save()
    assert browser(staff).get(reverse("markets:export_table", args=["demo", "reconciliation"])).status_code == 200


def test_the_floor_refuses_with_a_page_saying_why(users, traded):
    create_demo(users, "closed", visibility="participants")
    cases = [
        (users["eve"], ["closed", "events"], 403, "visible to its participants only"),
        (users["org"], ["demo", "payouts"], 409, "not settled"),
        (users["org"], ["demo", "quotes"], 404, "Unknown table"),
        (users["org"], ["nosuch", "events"], 404, "Unknown session"),
    ]
    for user, args, status, words in cases:
        response = browser(user).get(reverse("markets:export_table", args=args))
        assert response.status_code == status and words in response.content.decode(), args
    assert browser(users["eve"]).get(reverse("markets:export_zip", args=["closed"])).status_code == 403
    # A watcher of a public session downloads what a participant does.
    assert browser(users["eve"]).get(reverse("markets:export_table", args=["demo", "trades"])).status_code == 200
    assert browser(users["eve"]).get(reverse("markets:export_table", args=["demo", "holdings"])).status_code == 403
    anonymous = Client().get(reverse("markets:export_table", args=["demo", "events"]))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert browser(users["org"]).post(reverse("markets:export_zip", args=["demo"])).status_code == 405


# ---------------------------------------------------------------- any trades reconcile exactly

_examples = itertools.count(1)
quantities = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(30), places=6)
rates = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(3), places=8)
prices = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10_000_000), places=6)
moves = st.lists(
    st.tuples(st.sampled_from(["alice", "bob", "mm", "mm2"]), st.sampled_from(["alice", "bob", "mm", "mm2"]),
              st.permutations(LEGS), quantities, rates),
    max_size=8,
)  # fmt: skip


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    q=st.lists(st.integers(1, 10**15), min_size=4, max_size=4),
    trades=moves,
    fixing=st.lists(prices, min_size=4, max_size=4),
)
@example(  # q*S = 10000000000000000.000000000003: 29 digits, one more than Decimal's default context keeps
    q=[10**15, 10**15, 10**15, 3],
    trades=[],
    fixing=[Decimal(2_500_000), Decimal(2_500_000), Decimal(5_000_000), Decimal("0.000001")],
)
def test_reconciliation_totals_equal_q_times_the_fixing_for_any_trades(users, q, trades, fixing):
    sid = f"h{next(_examples)}"
    basket = [domain.qty_str(x) for x in q]
    create_demo(users, sid, q=basket)
    for taker, maker, legs, qty, rate in trades:
        try:
            trade(users, taker, maker, legs[0], legs[1], str(qty), str(rate), session_id=sid)
        except DomainError:
            pass  # a maker who is the taker, too little inventory, a trade too small: refused, as it should
    services.settle_session(users["org"], sid, prices=dict(zip(LEGS, map(str, fixing), strict=True)))
    rows = table("reconciliation", sid)
    with localcontext(prec=60):  # the reference sums exact too: q*S reaches 29 digits, past Decimal's default 28
        expected = sum(Decimal(x) * p for x, p in zip(basket, fixing, strict=True))
        (total,) = [r for r in rows if r["kind"] == "total"]
        assert Decimal(total["payout"]) == Decimal(total["expected"]) == expected and total["equal"] == "true"
        for person in (r for r in rows if r["kind"] == "participant"):
            mine = sum(Decimal(r["x_i*S_t2"]) for r in rows if r["kind"] == "leg" and r["user_id"] == person["user_id"])
            assert mine == Decimal(person["payout"]) == Decimal(person["expected"])
        assert sum(Decimal(r["payout"]) for r in table("payouts", sid)[:-1]) == expected


def test_a_name_that_starts_like_a_formula_is_text_in_every_table_and_numbers_stay_exact(users, traded):
    """A participant named "-2+3" or "@SUM" (names a sign-up accepts): a spreadsheet opening the export
    must show the name, not run it; quantities, rates and prices are the exact strings still."""
    for name in ("-2+3", "@SUM"):
        users[name] = make_user(name)
    session = services.create_session(users["org"], session_id="cells", legs=["AAPL", "NVDA"], q=[10, 10],
                                      start_mode="immediate", end_mode="manual")  # fmt: skip
    for name, role in (("-2+3", "trader"), ("@SUM", "maker")):
        services.join_session(users[name], session.id, role)
    services.open_session(users["org"], session.id)
    trade(users, "-2+3", "@SUM", "AAPL", "NVDA", "1.5", "0.5", session_id="cells")
    [row] = table("trades", "cells")
    assert (row["taker"], row["maker"]) == ("'-2+3", "'@SUM")
    assert (row["give_qty"], row["get_qty"], row["rate"]) == ("1.500000", "0.750000", "0.50000000")
    assert {r["name"] for r in table("holdings", "cells")} == {"'-2+3", "'@SUM"}


@given(st.text(max_size=12))
def test_a_cell_is_left_as_written_or_marked_as_text(cell):
    safe = export.spreadsheet_safe(cell)
    if safe != cell:
        assert safe == "'" + cell and cell[:1] in export.FORMULA_START
    else:
        assert cell[:1] not in export.FORMULA_START or export.NUMBER.fullmatch(cell)
    assert export.spreadsheet_safe("-12.500000") == "-12.500000"
