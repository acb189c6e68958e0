"""The addresses a room reaches this machine at, for ./start-demo.sh when it listens beyond loopback: one
URL per address a phone can open (`http://192.0.2.2:8000/`, `http://[fd00::2]:8000/`, then the machine's
name), and the host names Django must accept for them (ALLOWED_HOSTS).

    python -m sessionsite.lan urls  --bind 0.0.0.0 --port 8000
    python -m sessionsite.lan hosts --bind 0.0.0.0

Kept free of Django: the script calls it before any settings exist.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import socket
import subprocess
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_ADDRESSES = 5


def machine_addresses() -> list[str]:
    """This machine's addresses as `hostname -I` lists them (every interface's but loopback's), else those
    its name resolves to."""
    if shutil.which("hostname"):
        try:
            listed = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            listed = None
        if listed is not None and listed.returncode == 0:
            return listed.stdout.split()
    try:
        return [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
    except OSError:
        return []


def reachable(addresses: Iterable[str], bind: str) -> list[Address]:
    """The addresses of `addresses` a phone can open while the server listens on `bind`: a server bound to
    0.0.0.0 answers IPv4 only, one bound to `::` both, one bound to an address that address only. Loopback,
    unspecified and multicast addresses are left out, and IPv6 link-local ones (fe80::, useless without the
    phone's own zone index); each address once, in the order given."""
    try:
        bound = ipaddress.ip_address(bind.strip("[]")) if bind else ipaddress.ip_address("0.0.0.0")
    except ValueError:
        bound = None  # a host name: whatever it resolves to on this machine
    found: list[Address] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or address.is_multicast or address in found:
            continue
        if address.version == 6 and address.is_link_local:
            continue
        if bound is not None and not bound.is_unspecified and address != bound:
            continue
        if bound is not None and bound.is_unspecified and bound.version == 4 and address.version == 6:
            continue
        found.append(address)
    if bound is not None and not bound.is_unspecified and not found and not bound.is_loopback:
        found.append(bound)  # bound to an address `hostname -I` does not list: it is still the one to open
    return found[:MAX_ADDRESSES]


def host_of(address: Address) -> str:
    """An address as it goes in a URL or ALLOWED_HOSTS: IPv6 in brackets."""
    return f"[{address}]" if address.version == 6 else str(address)


def machine_name() -> str:
    """This machine's name, when a phone might resolve it (not `localhost`)."""
    name = socket.gethostname().strip()
    return "" if not name or name.lower() in {"localhost", "localhost.localdomain"} else name


def urls(addresses: Iterable[Address], port: int, name: str = "") -> list[str]:
    """One usable URL per address, then one for the machine's name."""
    hosts = [host_of(a) for a in addresses] + ([name] if name else [])
    return [f"http://{host}:{port}/" for host in hosts]


def hosts(addresses: Iterable[Address], name: str = "") -> list[str]:
    return [host_of(a) for a in addresses] + ([name] if name else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionsite.lan", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["urls", "hosts"])
    parser.add_argument("--bind", default="0.0.0.0", help="the address the server listens on (HOST)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    found = reachable(machine_addresses(), args.bind)
    name = machine_name()
    for line in urls(found, args.port, name) if args.what == "urls" else hosts(found, name):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
