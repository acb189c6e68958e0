"""The house keeps its shape: dependencies one way (the import contracts in pyproject.toml, checked with
import-linter), hand-written SQL only in its named modules, and no module grown past what one person
reads in one sitting without saying why."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from sessionsite.testing import BASE_DIR

APPS = ("sessionsite", "markets", "ledger", "oracle")

# Where SQL may be written by hand: the event store (any database), its SQLite readers, what following
# PostgreSQL takes, the market's hot path, and the SQLite connection's own PRAGMAs in the settings. Migrations carry their DDL. The
# benchmarks (bench/) measure raw loops on purpose.
SQL_MODULES = {
    "ledger/store.py",
    "ledger/sqlite.py",
    "ledger/postgres.py",
    "markets/sql.py",
    "markets/floor_sql.py",
    "markets/batch_sql.py",
    "markets/presence_sql.py",
    "sessionsite/config.py",
}
SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH|BEGIN)\s", re.ASCII)
SQL_CALLS = {"execute", "executemany", "executescript", "raw", "extra", "cursor", "RawSQL"}

MAX_LINES = 400
# A module may be longer when splitting it would cut one thing in two; each says why.
LONGER: dict[str, str] = {
    "markets/sql.py": "the hand-written SQL of the commands and the projection, with the plumbing every "
    "hand-written read shares, in one module by design (its docstring; the test above holds it there): one "
    "more statement per hot path must not scatter them",
}


def modules() -> list[Path]:
    found = []
    for app in APPS:
        for path in (BASE_DIR / app).rglob("*.py"):
            parts = path.relative_to(BASE_DIR).parts
            if "tests" in parts or "migrations" in parts:
                continue
            found.append(path)
    return sorted(found)


def _sql_uses(tree: ast.AST) -> list[tuple[int, str]]:
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            uses.append((node.lineno, node.value.strip()[:60]))
        elif isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and SQL_TEXT.match(head.value):
                uses.append((node.lineno, head.value.strip()[:60]))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in SQL_CALLS:
                uses.append((node.lineno, f"{name}(...)"))
    return uses


def test_hand_written_sql_lives_only_in_its_named_modules():
    misplaced = {}
    for path in modules():
        rel = path.relative_to(BASE_DIR).as_posix()
        if rel in SQL_MODULES:
            continue
        uses = _sql_uses(ast.parse(path.read_text(), rel))
        if uses:
            misplaced[rel] = uses
    assert misplaced == {}, f"raw SQL outside {sorted(SQL_MODULES)}: {misplaced}"


def test_the_scan_finds_sql_where_it_is():
    """The check above can fail: it sees the statements of the modules that hold them."""
    for rel in sorted(SQL_MODULES):
        assert _sql_uses(ast.parse((BASE_DIR / rel).read_text())), rel
    assert _sql_uses(ast.parse('cursor.execute("SELECT 1")')) and _sql_uses(ast.parse('x = f"UPDATE t SET a={b}"'))


def test_no_module_is_longer_than_one_reads_at_a_sitting():
    long = {}
    for path in modules():
        rel = path.relative_to(BASE_DIR).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and rel not in LONGER:
            long[rel] = lines
    assert long == {}, f"modules over {MAX_LINES} lines (split them, or say why in LONGER): {long}"
    for rel in LONGER:
        assert (BASE_DIR / rel).exists(), f"{rel} is listed in LONGER but gone"


def test_the_import_contracts_hold():
    """pyproject.toml: bench -> sessionsite -> markets -> (ledger | oracle), ledger and oracle independent;
    markets.domain and oracle.units import no Django; the services import no edge (page, API, admin,
    socket, command); the reads (selectors, access, projections) import no service."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken." in done.stdout and " kept" in done.stdout
