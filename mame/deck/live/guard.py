"""Who the live deck's server (``mame.deck.live.server``) answers, and what it lets them start.

- Host allow-list: only requests whose Host header names this server are answered (starlette's
  TrustedHostMiddleware, fed by ``allowed_hosts``): the loopback names, plus the ``--host`` given. A page of another
  site whose DNS name was made to point at 127.0.0.1 (DNS rebinding) sends its own name, and gets 400.
- Origin check (``SameOrigin``): a request that starts work, the PDF print or any method but GET/HEAD, sent by a page
  of another origin (its ``Origin`` header) is refused (403); a request with no Origin (the address bar, a link
  followed, curl) passes.
- ``beyond_loopback``: whether a bound socket can be reached from other machines (the server then warns).
"""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
STARTS_WORK = ("/deck.pdf",)   # GET paths that start a process (besides every method other than GET and HEAD)


def allowed_hosts(host: str | None) -> list[str]:
    """The Host header names the server answers: loopback ones, plus ``host`` when one was given (for a wildcard
    address, 0.0.0.0 or ::, this machine's name and addresses, as other machines reach it)."""
    names = list(LOOPBACK_NAMES)
    if host:
        names.append(f"[{host}]" if ":" in host else host)
        if _wildcard(host):
            names += _machine_names()
    return list(dict.fromkeys(n.lower() for n in names))


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name, not an address
        return False


def _machine_names() -> list[str]:
    import psutil

    found = [socket.gethostname()]
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = a.address.split("%")[0]  # an IPv6 link-local address's zone
                found.append(f"[{ip}]" if ":" in ip else ip)
    return found


class SameOrigin:
    """ASGI middleware: a request that starts work (a method other than GET/HEAD, or a path in ``STARTS_WORK``)
    whose ``Origin`` header names another origin than the server's own is refused (403). A request with no Origin
    (typed in the address bar, a link followed, curl) passes."""

    def __init__(self, app):
        from starlette.datastructures import Headers
        from starlette.responses import PlainTextResponse

        self.app, self.headers, self.refusal = app, Headers, PlainTextResponse

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (scope["method"] not in ("GET", "HEAD") or scope["path"] in STARTS_WORK):
            headers = self.headers(scope=scope)
            origin, own = headers.get("origin"), f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            if origin is not None and origin.lower() != own.lower():
                refusal = self.refusal(f"Refused: a request from {origin} may not start work on {own}", status_code=403)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def beyond_loopback(sock: socket.socket) -> bool:
    return not ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).is_loopback
