"""A workshop room in miniature, for test_start_demo_network.py: run inside a private network namespace
whose one interface has the room address ROOM, from a copy of the project. Starts the demo on the network
(HOST=0.0.0.0), signs in as a phone would (at ROOM) and as the lecturer's laptop would (at 127.0.0.1),
restarts it on the network, then (while it runs) on this machine only, and prints what it saw as JSON.

    python sessionsite/tests/room.py PORT ROOM

Standard library only: it runs where the test cannot reach (the namespace's own loopback and interface).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request


def sign_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector | None:
    """A browser that signed in at `base`, or None when the site refused the password."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/accounts/login/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=urllib.parse.urlencode(form).encode(), headers={"Referer": f"{base}/"}
    )
    with opener.open(request, timeout=10) as response:
        response.read()
        return None if "/accounts/login/" in response.geturl() else opener


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3).read()
    except OSError:
        return False
    return True


def start(**env: str) -> str:
    done = subprocess.run(
        ["./start-demo.sh", "--no-browser"], env=os.environ | env, capture_output=True, text=True, timeout=240
    )
    if done.returncode != 0:
        raise SystemExit(f"start-demo.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stop() -> None:
    subprocess.run(["./stop-demo.sh"], capture_output=True, timeout=60, check=False)


def main(port: int, room: str) -> dict:
    laptop, phone = f"http://127.0.0.1:{port}", f"http://{room}:{port}"
    seen: dict = {}
    try:
        seen["first"] = start(HOST="0.0.0.0")
        printed = re.search(r"^\s+organiser\s+(\S+)$", seen["first"], flags=re.M)
        seen["printed"] = printed.group(1) if printed else ""
        seen["demo_from_the_room"] = sign_in(phone, "organiser", "demo") is not None
        seen["demo_on_the_laptop"] = sign_in(laptop, "organiser", "demo") is not None
        on_a_phone = sign_in(phone, "organiser", seen["printed"])
        on_the_laptop = sign_in(laptop, "organiser", seen["printed"])
        seen["printed_from_the_room"] = on_a_phone is not None
        seen["printed_on_the_laptop"] = on_the_laptop is not None
        if on_a_phone is not None and on_the_laptop is not None:
            seen["invites_on_the_laptop"] = on_the_laptop.open(f"{laptop}/sessions/demo/invites").read().decode()
            seen["invites_at_the_room"] = on_a_phone.open(f"{phone}/sessions/demo/invites").read().decode()
        stop()
        seen["again"] = start(HOST="0.0.0.0")
        seen["printed_after_restart"] = sign_in(phone, "organiser", seen["printed"]) is not None
        seen["demo_after_restart"] = sign_in(phone, "organiser", "demo") is not None
        seen["loopback"] = start()  # while it runs on the network: started again, on this machine only
        seen["printed_on_loopback"] = sign_in(laptop, "organiser", seen["printed"]) is not None
        seen["demo_on_loopback"] = sign_in(laptop, "alice", "demo") is not None
        seen["room_on_loopback"] = _answers(f"{phone}/health")
    finally:
        stop()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2])))
