"""HOST=0.0.0.0 ./start-demo.sh, as a lecturer runs it for a room, in a private network namespace whose
one interface has a room address (192.0.2.77, fd00::77): nothing is exposed for real, yet phones' and the
laptop's views are both there (sessionsite/tests/room.py drives them from inside the namespace)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from sessionsite.testing import free_port
from sessionsite.tests.test_start_demo import demo_env, project_copy

pytestmark = pytest.mark.slow

ROOM = "192.0.2.77"
# A private namespace with loopback and one interface (one end of a veth pair) holding the room's addresses.
ROOM_NETWORK = (
    "ip link set lo up && ip link add veth0 type veth peer name veth1 && "
    f"ip addr add {ROOM}/24 dev veth0 && ip link set veth0 up && ip link set veth1 up && "
    '{ ip -6 addr add fd00::77/64 dev veth0 nodad || true; } && exec "$@"'
)


def _room_prefix() -> list[str] | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    prefix = ["unshare", "--net", "bash", "-c", ROOM_NETWORK, "room"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=20)
    return prefix if probe.returncode == 0 else None


@pytest.mark.skipif("_room_prefix() is None", reason="needs `unshare --net` with veth interfaces, and iproute2")
def test_on_the_network_the_demo_accounts_have_passwords_of_their_own_and_the_room_gets_usable_addresses(tmp_path):
    copy = project_copy(tmp_path / "clone")
    port = free_port()
    done = subprocess.run(
        [*_room_prefix(), str(copy / ".venv/bin/python"), "sessionsite/tests/room.py", str(port), ROOM],
        cwd=copy,
        env=demo_env(port),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    first = seen["first"]

    # One usable URL per address, a line each: the IPv4 room address (a server on 0.0.0.0 answers IPv4 only).
    urls = [line.strip() for line in first.splitlines() if line.strip().startswith("http://") and "WARNING" not in line]
    assert f"http://{ROOM}:{port}/" in urls
    assert all("," not in url and url.endswith(f":{port}/") for url in urls), urls
    assert not any("fd00::77" in url for url in urls)
    # The warning names the organiser and where its password is; the new passwords are shown this once.
    assert "WARNING: the demo listens on 0.0.0.0, beyond this machine" in first
    assert "organiser pauses, settles and invites" in first and ".demo/passwords" in first
    assert 'password "demo"' not in first and len(seen["printed"]) == 14
    assert (copy / ".demo" / "passwords").stat().st_mode & 0o077 == 0

    # `demo` is refused for the organiser, from the room and on the laptop; the printed password works.
    assert seen["demo_from_the_room"] is False and seen["demo_on_the_laptop"] is False
    assert seen["printed_from_the_room"] is True and seen["printed_on_the_laptop"] is True

    # The invites page opened at 127.0.0.1 says phones cannot follow its links and offers the room address.
    assert "phones cannot follow the links" in seen["invites_on_the_laptop"]
    assert f'href="http://{ROOM}:{port}/sessions/demo/invites"' in seen["invites_on_the_laptop"]
    assert "Invite people" in seen["invites_at_the_room"] and "network-notice" not in seen["invites_at_the_room"]

    # A restart keeps the same passwords, says where they are, and does not show them again.
    assert seen["printed_after_restart"] is True and seen["demo_after_restart"] is False
    assert seen["printed"] not in seen["again"] and "passwords in .demo/passwords" in seen["again"]
    # Started on this machine only while it ran on the network: started again there (the room no longer
    # reaches it); the passwords stay (no silent return to `demo`), and no warning.
    assert "The demo listens on 0.0.0.0: starting it again on 127.0.0.1." in seen["loopback"]
    assert seen["room_on_loopback"] is False and "already running" not in seen["loopback"]
    assert seen["printed_on_loopback"] is True and seen["demo_on_loopback"] is False
    assert "WARNING" not in seen["loopback"] and "passwords in .demo/passwords" in seen["loopback"]
