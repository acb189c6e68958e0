"""The rules of invites that need no database: the signed link, what a display name may be, the
username a name becomes, and how a pasted list of people is read.

A link names its Invite row by a random `token_id`, signed with the site's key (django.core.signing,
salted for this use only): a token altered by one character is refused before any query, and a link
cannot be guessed from another one. A rejoin link names its RejoinLink row the same way, under a salt
of its own, so an invite token is never a rejoin token (nor the other way round).
"""

from __future__ import annotations

import csv
import re
import secrets
import unicodedata
from dataclasses import dataclass

from django.core import signing

from markets.errors import DomainError

SALT = "markets.invites.link"
REJOIN_SALT = "markets.rejoin.link"
SEP = "."  # not in the signature's URL-safe base64, so the token is one path segment
MAX_TOKEN_LENGTH = 200
NAME_MAX = 40
MAX_USES = 1000  # one link for a whole lecture hall at most
MAX_PEOPLE = 500  # names pasted at once
USERNAME_BASE_MAX = 30  # leaves room for a "-12" suffix, readable on the floor
ROLES = {"trader": "trader", "maker": "maker", "market maker": "maker", "market-maker": "maker"}

# Control, format (zero-width, bidirectional overrides), surrogate, private-use and unassigned
# characters, and line or paragraph separators: none of them belong in a name shown to a class.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def new_token_id() -> str:
    """96 random bits, URL-safe."""
    return secrets.token_urlsafe(12)


def _signer(salt: str = SALT) -> signing.Signer:
    return signing.Signer(salt=salt, sep=SEP)


def sign(token_id: str, *, salt: str = SALT) -> str:
    """The token a link carries. Deterministic, so the organiser's page can show a link again."""
    return _signer(salt).sign(token_id)


def unsign(token: object, *, salt: str = SALT) -> str | None:
    """The token id a link names, or None when the token was altered, cut short or never made here."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return _signer(salt).unsign(token)
    except signing.BadSignature:
        return None


def sign_rejoin(token_id: str) -> str:
    return sign(token_id, salt=REJOIN_SALT)


def unsign_rejoin(token: object) -> str | None:
    return unsign(token, salt=REJOIN_SALT)


def returning_value(token_id: str, user_id: int) -> str:
    """What a browser's "joined" cookie holds (signed by the page): the invite it joined by and the user
    it became. The server believes neither alone: it checks that this user joined by this link."""
    return f"{token_id}/{user_id}"


def read_returning(value: object) -> tuple[str, int] | None:
    """(invite token id, user id) from a returning cookie's value, or None for anything else."""
    if not isinstance(value, str) or value.count("/") != 1:
        return None
    token_id, user_id = value.split("/")
    if not token_id or len(token_id) > 32 or not (user_id.isascii() and user_id.isdigit()) or len(user_id) > 18:
        return None
    return token_id, int(user_id)


def clean_display_name(text: object) -> str:
    """A display name as people will see it: trimmed, inner blanks collapsed, 1-40 characters, no
    control characters. Refusals name what to change."""
    if not isinstance(text, str):
        raise DomainError("Type your name", "invalid_name")
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise DomainError("Type your name (1 to 40 characters)", "invalid_name")
    if len(name) > NAME_MAX:
        raise DomainError(f"That name is {len(name)} characters long: use at most {NAME_MAX}", "invalid_name")
    bad = next((c for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        raise DomainError(
            f"A name cannot hold control or invisible characters (U+{ord(bad):04X}): type it again", "invalid_name"
        )
    return name


def same_name(name: str) -> str:
    """The key two names are compared by: the same ignoring case (Zoë and ZOË are one name)."""
    return unicodedata.normalize("NFC", name).casefold()


def username_base(name: str) -> str:
    """What a display name becomes as a username, before a suffix makes it unique: its letters and
    digits with accents dropped and blanks as hyphens ("Zoë Smith" -> "Zoe-Smith"); a name with no Latin
    letter keeps its own letters ("李雷"); a name with none at all becomes "guest"."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9]+", "-", plain).strip("-")
    if not base:
        base = re.sub(r"[^\w]+", "-", name).strip("-_")
    return base[:USERNAME_BASE_MAX].strip("-_") or "guest"


def free_username(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`... the first not in `taken` (compared ignoring case)."""
    if same_name(base) not in taken:
        return base
    n = 2
    while same_name(f"{base}-{n}") in taken:
        n += 1
    return f"{base}-{n}"


def read_role(text: str, default: str) -> str:
    """A role as typed in a pasted line ("trader", "Maker", "market maker"); blank is `default`."""
    typed = " ".join(text.split()).lower()
    if not typed:
        return default
    if typed not in ROLES:
        raise DomainError(f"role {text.strip()[:20]!r} is not trader or maker", "invalid_role")
    return ROLES[typed]


@dataclass(frozen=True)
class Person:
    line: int
    name: str
    role: str


class PeopleRefused(DomainError):
    """A pasted list with bad lines: every problem, each naming its line. Nothing was created."""

    code = "invalid_names"
    kind = "invalid"

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__("Nothing was created: " + "; ".join(shown))
        self.problems = problems


def read_people(people: str | list[str], default_role: str) -> list[Person]:
    """The people of a pasted list: one a line, either a name or CSV `name,role` (a header line
    `name,role` is skipped; quotes let a name hold a comma); or a list of names, each with the default
    role. Every bad line is reported (PeopleRefused), and duplicates ignoring case."""
    if isinstance(people, str):
        lines = list(enumerate(people.splitlines(), start=1))
        pasted = True
    else:
        lines = list(enumerate(people, start=1))
        pasted = False
    found: list[Person] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for number, raw in lines:
        if not isinstance(raw, str):
            problems.append(f"line {number}: not a name")
            continue
        if pasted:
            if not raw.strip():
                continue
            try:
                cells = next(csv.reader([raw], skipinitialspace=True), [])
            except csv.Error as exc:
                problems.append(f"line {number}: cannot be read as CSV ({exc})")
                continue
            if not found and not problems and [c.strip().lower() for c in cells] in (["name"], ["name", "role"]):
                continue
            if len(cells) > 2:
                problems.append(f"line {number}: expected a name, or name,role (found {len(cells)} fields)")
                continue
            typed, role_text = cells[0], (cells[1] if len(cells) == 2 else "")
        else:
            typed, role_text = raw, ""
        try:
            name = clean_display_name(typed)
            role = read_role(role_text, default_role)
        except DomainError as exc:
            problems.append(f"line {number}: {exc.message}")
            continue
        key = same_name(name)
        if key in first_seen:
            problems.append(f"line {number}: {name} is already on line {first_seen[key]}")
            continue
        first_seen[key] = number
        found.append(Person(number, name, role))
    if not found and not problems:
        problems.append("Paste at least one name (one a line)")
    if len(found) > MAX_PEOPLE:
        problems.append(f"{len(found)} people at once is too many: paste at most {MAX_PEOPLE}")
    if problems:
        raise PeopleRefused(problems)
    return found
