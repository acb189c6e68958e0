"""The dependency tree is locked: every package the scripts install is pinned with hashes, and the lock
agrees with the direct pins a person edits (requirements*.txt). A pin changed without re-running
scripts/lock.sh fails here, not on a newcomer's machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("-r "):
            pins |= direct_pins(path.parent / line[3:].strip())
        elif match := PIN.match(line):
            pins[normal(match[1])] = match[3]
        elif line and not line.startswith("#"):
            raise AssertionError(f"{path.name}: {line!r} is not an exact pin (name==version)")
    return pins


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each entry of a lock file (markers may split a name)."""
    entries: dict[str, tuple[str, int]] = {}
    name = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            name = normal(match[1])
            entries[name] = (match[3], 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize("name", ["requirements", "requirements-dev"])
def test_the_lock_pins_every_package_with_hashes_and_agrees_with_the_direct_pins(name):
    lock = locked(ROOT / f"{name}.lock")
    assert len(lock) > len(direct_pins(ROOT / f"{name}.txt")), "the lock holds the whole tree, not only direct pins"
    assert [n for n, (_, hashes) in lock.items() if hashes == 0] == []
    for package, version in direct_pins(ROOT / f"{name}.txt").items():
        assert package in lock, f"{package} is pinned in {name}.txt but not locked: run scripts/lock.sh"
        assert lock[package][0] == version, f"{package}: {name}.txt says {version}, {name}.lock {lock[package][0]}"
