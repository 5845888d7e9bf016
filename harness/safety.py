"""Safe by default: traffic goes to loopback targets only, unless the user allows a remote one."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from harness.errors import UsageError


class RemoteTargetError(UsageError, ValueError):
    """A load or chaos target that is not on this machine, and --allow-remote was not given."""


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to those (``localhost``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def require_loopback(url: str, allow_remote: bool = False) -> None:
    """Raise ``RemoteTargetError`` naming the host unless it is loopback or ``allow_remote``."""
    if allow_remote:
        return
    host = urlsplit(url).hostname
    if not host:
        raise RemoteTargetError(f"target {url!r} has no host; expected e.g. http://127.0.0.1:8700")
    if not is_loopback_host(host):
        raise RemoteTargetError(
            f"target host {host!r} is not a loopback address; load and chaos go to 127.0.0.1 or ::1 "
            "only, unless you pass --allow-remote"
        )
