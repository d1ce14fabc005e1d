"""HTTP safety shared by the remote providers: retries that never pay twice, and output downloads that cannot
be steered.

Every remote provider talks to its API and then downloads outputs from a CDN it names. What is dangerous about
that does not depend on the provider, so it lives here once:

* :func:`call_with_retries` / :func:`acall_with_retries`: the retry loop. *Whether* to retry is the provider's
  decision (its error classes differ); the loop only sleeps and tries again.
* :func:`proves_nothing_created` and :data:`NOTHING_SENT`: the only answers and transport failures after which
  a task-creating POST may be sent again (see there).
* :func:`retry_after`, :func:`parse_retry_after`, :func:`backoff_delay`: how long to wait.
* :class:`DownloadGuard` with :func:`stream_to_file` / :func:`astream_to_file`: an output download follows
  redirects hop by hop (never https → http, never to an internal address other than the host it started on,
  checked again after resolution and at the connected peer), stops at a size cap, and reads at most
  :data:`ERROR_BODY_MAX` bytes of an error answer.
* :func:`redact_url` and :func:`quiet_http_loggers`: output URLs are signed; log lines never show their query.
* :func:`part_path`: downloads land in a temporary name first, so a destination is never a partial file.
* :func:`check_api_key` and :func:`image_data_uri`: a key that cannot travel in a header is refused before any
  request (without echoing it); an image goes inline only when its data URI fits a provider's limit.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import logging
import math
import mimetypes
import os
import random
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

#: A ``Retry-After`` is honoured up to this many seconds (and a wait is further capped by the client's cap).
RETRY_AFTER_MAX_S = 3600.0
#: Redirect hops an output download follows at most.
MAX_OUTPUT_REDIRECTS = 5
#: Bytes of an error body read at most (a message needs a few hundred).
ERROR_BODY_MAX = 64 * 1024
CHUNK = 1 << 16

#: Transport failures that happen before a complete request reached the server: no connection (refused,
#: connect timeout, no free connection in the pool, the proxy refused the tunnel), or a write that failed. A write
#: error counts because our JSON bodies are framed by Content-Length and sent with ``sendall``: an error there
#: means the last bytes never left, so the server holds an incomplete request it cannot parse, let alone act on.
#: A read error, read timeout or "server disconnected" comes after the whole request went out: ambiguous.
NOTHING_SENT: tuple[type[httpx.RequestError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.WriteError,
    httpx.WriteTimeout,
)
#: Programming or configuration errors: retrying cannot help.
NEVER_RETRY: tuple[type[httpx.RequestError], ...] = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.TooManyRedirects,
)


# ---------------------------------------------------------------------------------------------- retrying


def call_with_retries(
    attempt: Callable[[], httpx.Response],
    after_response: Callable[[httpx.Response, int], float | None],
    after_transport_error: Callable[[httpx.RequestError, int], float],
) -> httpx.Response:
    """Send (``attempt``) until ``after_response`` accepts an answer (returns ``None``).

    Both deciders get the attempt number (0 for the first) and return the seconds to wait before the next
    attempt, or raise the provider's error: the loop itself never decides to retry.
    """
    tries = 0
    while True:
        try:
            response = attempt()
        except httpx.RequestError as exc:
            delay = after_transport_error(exc, tries)
        else:
            maybe = after_response(response, tries)
            if maybe is None:
                return response
            delay = maybe
        tries += 1
        time.sleep(delay)


async def acall_with_retries(
    attempt: Callable[[], Awaitable[httpx.Response]],
    after_response: Callable[[httpx.Response, int], float | None],
    after_transport_error: Callable[[httpx.RequestError, int], float],
) -> httpx.Response:
    """:func:`call_with_retries` for coroutines (sleeps without blocking the event loop)."""
    tries = 0
    while True:
        try:
            response = await attempt()
        except httpx.RequestError as exc:
            delay = after_transport_error(exc, tries)
        else:
            maybe = after_response(response, tries)
            if maybe is None:
                return response
            delay = maybe
        tries += 1
        await asyncio.sleep(delay)


def proves_nothing_created(response: httpx.Response) -> bool:
    """Whether an error answer to a task-creating POST proves that no task was created.

    * 429: the request was refused by rate limiting before any work.
    * 503 *with a valid* ``Retry-After``: RFC 9110 §15.6.4 defines 503 as the server being "unable to handle
      the request" (overload, maintenance) and §10.2.3 has ``Retry-After`` say how long the service will be
      unavailable. A server that sheds a request and asks for it again later has not acted on it.
      ``Retry-After`` is required because a bare 503 is also what proxies give for an upstream that reset or
      timed out *after* receiving the request (Envoy's "upstream connect error or disconnect/reset before
      headers" is a 503 without it) — and then the backend may have created the task.
    * Everything else — 500, 502 ("invalid response from an inbound server": the backend got the request),
      504 (the backend got it and did not answer in time; it may still finish) — does not.
    """
    status = response.status_code
    return status == 429 or (status == 503 and retry_after(response) is not None)


def backoff_delay(
    rng: random.Random, attempt: int, retry_after_s: float | None, base: float, cap: float
) -> float:
    """Full jitter (uniform in [0, min(cap, base·2^attempt)]); a ``Retry-After`` is waited out instead,
    clamped to ``cap`` so a server cannot park a worker indefinitely."""
    if retry_after_s is not None and math.isfinite(retry_after_s):
        return min(max(retry_after_s, 0.0), cap)
    return rng.uniform(0.0, min(cap, base * 2 ** min(attempt, 62)))


_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, in [0, :data:`RETRY_AFTER_MAX_S`], or ``None`` when absent or unusable."""
    return parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` value: delay-seconds (ASCII digits; a fraction is tolerated) or an HTTP date.

    Never raises. What is not one of those — ``nan``, ``inf``, ``-5``, ``1e3``, non-ASCII digits, an impossible
    date, garbage — is ``None`` (the caller falls back to its own backoff; for a 503 on a task-creating POST it
    also means "not proof that nothing was created"). A usable value is clamped to [0, ``RETRY_AFTER_MAX_S``]: a
    date in the past is 0, a date or a number far in the future is the maximum.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        return min(float(text), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons returned None for some unparsable dates
        return None  # pragma: no cover
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except OverflowError:  # pragma: no cover - datetimes are bounded, the difference fits
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


# ------------------------------------------------------------------------------------------- addresses


def redact_url(url: str) -> str:
    """A URL fit for a log line: scheme, host, port and path; no credentials, no query (presigned URLs carry
    their signature there), no fragment."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "<unparsable url>"
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    query = "?[redacted]" if parsed.query or parsed.fragment else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path}{query}"


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host string is, when it is a literal address (``None`` for a name)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a public unicast address: loopback, link-local, private, shared (CGNAT), reserved, multicast,
    unspecified, documentation ranges. IPv4 carried in IPv6 (``::ffff:169.254.169.254``) is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_internal(mapped)
    return not address.is_global or address.is_multicast


def default_port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def proxied(url: httpx.URL) -> bool:
    """Whether an environment proxy (which httpx honours) carries requests to ``url``."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host)


def resolve(host: str, port: int | None) -> list[str]:
    """The addresses a host name resolves to (empty when it does not: connecting then fails on its own)."""
    if ip_of(host) is not None:
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def aresolve(host: str, port: int | None) -> list[str]:
    if ip_of(host) is not None:
        return [host]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def quiet_http_loggers() -> None:
    """Hold httpx's and httpcore's loggers at WARNING: their INFO/DEBUG lines print full request URLs, and an
    output URL's query is its signature. (Our own lines use :func:`redact_url`.)"""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def check_api_key(key: str) -> None:
    """Refuse an empty key, or one with characters illegal in a header: h11 would raise an error that quotes the
    header, key and all."""
    if not key:
        raise ValueError("api_key is empty")
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ValueError("api_key contains characters that are not allowed in an HTTP header")


def data_uri_size(file_size: int, mime: str) -> int:
    """Length of ``data:<mime>;base64,<payload>`` for a file of ``file_size`` bytes."""
    return len(f"data:{mime};base64,") + 4 * math.ceil(file_size / 3)


def image_data_uri(path: str | os.PathLike[str], *, max_bytes: int) -> str | None:
    """The image as a data URI when the URI is at most ``max_bytes`` long, else ``None`` (upload it instead).

    The size is computed from the file's length before reading it, so a large file is never loaded.
    """
    p = Path(path)
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    if data_uri_size(p.stat().st_size, mime) > max_bytes:
        return None
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"


def part_path(dest: Path) -> Path:
    """A hidden temporary name next to ``dest`` (renamed onto it once complete)."""
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")


def detached(response: httpx.Response, body: bytes) -> httpx.Response:
    """A closed streamed response's status and headers with the part of its body that was read."""
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


def capped_request(http: httpx.Client, request: Mapping[str, Any], max_bytes: int) -> httpx.Response:
    """Send a request and keep at most ``max_bytes`` of the answer's body: an API answer is a few KB, and a
    server must not make a worker hold whatever it sends. A longer body is cut (it then no longer parses)."""
    with http.stream(**request) as response:
        body = bytearray()
        for chunk in response.iter_bytes(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                break
        return detached(response, bytes(body[:max_bytes]))


async def acapped_request(
    http: httpx.AsyncClient, request: Mapping[str, Any], max_bytes: int
) -> httpx.Response:
    """:func:`capped_request` for coroutines."""
    async with http.stream(**request) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                break
        return detached(response, bytes(body[:max_bytes]))


# -------------------------------------------------------------------------------------- output downloads


@dataclass(frozen=True)
class DownloadGuard:
    """Where one output download may go and how much may arrive.

    :param url: the URL the download started at (its host and port may redirect to themselves).
    :param what: how messages name the download (``GET <output url>``: never the URL itself).
    :param max_bytes: the most bytes accepted (``None``: no cap).
    :param rejected: builds the provider's refusal (an :class:`~video_pipeline.outputs.OutputRejected`).
    :param log: where redirects are logged (redacted).
    :param label: the provider's name at the start of log lines.
    """

    url: str
    what: str
    max_bytes: int | None
    rejected: Callable[[str], Exception]
    log: logging.Logger
    label: str

    def check_redirect(self, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        """The next hop of a redirect, or the refusal.

        Allowed: the same scheme or up to https (never https → http, never another scheme), and no internal
        address (loopback, link-local such as 169.254.169.254, private, shared, reserved …) unless it is the very
        host and port the download started on. That exception is what lets a URL on an internal host redirect
        to itself — a fake provider's outputs on 127.0.0.1, or a MinIO on the LAN — without letting anything
        bounce a download to a *different* internal service (the cloud metadata endpoint, a database admin
        page). A host name is checked again after resolution (:meth:`check_addresses`) and the address actually
        connected to once more (:meth:`check_peer`), so a name that resolves inward cannot slip through.
        """
        location = response.headers.get("location", "")
        try:
            target = current.join(location)
        except (httpx.InvalidURL, ValueError):
            raise self.rejected(f"{self.what}: redirect to an invalid URL") from None
        shown = redact_url(str(target))
        if target.scheme not in ("http", "https"):
            raise self.rejected(f"{self.what}: redirect to a {target.scheme or 'relative'} URL refused")
        if current.scheme == "https" and target.scheme != "https":
            raise self.rejected(f"{self.what}: redirect from https to {shown} refused (scheme downgrade)")
        if not self.same_origin_host(target):
            host = target.host.lower().rstrip(".")
            if host == "localhost" or host.endswith(".localhost"):
                raise self.rejected(f"{self.what}: redirect to {shown} refused (loopback host)")
            address = ip_of(host)
            if address is not None and is_internal(address):
                raise self.rejected(f"{self.what}: redirect to {shown} refused (internal address)")
        self.log.info("%s %s: redirected to %s", self.label, self.what, shown)
        return target

    def check_addresses(self, target: httpx.URL, addresses: Sequence[str]) -> None:
        """A redirect target's host name must not resolve to an internal address (unless it is the start host)."""
        if self.same_origin_host(target):
            return
        for address in addresses:
            ip = ip_of(address)
            if ip is not None and is_internal(ip):
                raise self.rejected(
                    f"{self.what}: redirect to {redact_url(str(target))} refused (resolves to an internal address)"
                )

    def check_peer(self, target: httpx.URL, response: httpx.Response) -> None:
        """The address a redirect hop actually connected to (catches DNS answers that changed after the check).

        Skipped when an environment proxy carries the request: then the peer is the proxy, not the target.
        """
        if self.same_origin_host(target) or proxied(target):
            return
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if isinstance(peer, tuple) and peer:
            ip = ip_of(str(peer[0]))
            if ip is not None and is_internal(ip):
                raise self.rejected(
                    f"{self.what}: redirect to {redact_url(str(target))} refused (connected to an internal address)"
                )

    def same_origin_host(self, target: httpx.URL) -> bool:
        start = httpx.URL(self.url)
        return (start.host.lower(), default_port(start)) == (target.host.lower(), default_port(target))

    def check_length(self, response: httpx.Response) -> None:
        """Refuse before reading when the announced length is over the cap."""
        if self.max_bytes is None:
            return
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > self.max_bytes:
            raise self.rejected(
                f"{self.what}: {announced} bytes announced, more than the {self.max_bytes} allowed"
            )

    def check_received(self, received: int) -> None:
        """Refuse as soon as the bytes actually received pass the cap (a missing or lying Content-Length)."""
        if self.max_bytes is not None and received > self.max_bytes:
            raise self.rejected(f"{self.what}: more than the {self.max_bytes} bytes allowed")


def stream_to_file(
    http: httpx.Client, request: Mapping[str, Any], sink: Path, guard: DownloadGuard
) -> httpx.Response:
    """Follow the redirect chain hop by hop (each hop checked), then stream a 200 into ``sink`` under the cap.
    Any other final answer comes back with at most :data:`ERROR_BODY_MAX` bytes of its body.

    ``request`` holds ``httpx.Client.stream`` keywords (method, headers, …); its URL is the guard's.
    """
    url = httpx.URL(guard.url)
    for hop in range(MAX_OUTPUT_REDIRECTS + 1):
        if hop:
            guard.check_addresses(url, resolve(url.host, default_port(url)))
        with http.stream(**{**request, "url": url}) as response:
            if hop:
                guard.check_peer(url, response)
            if response.is_redirect:
                url = guard.check_redirect(url, response)
                continue
            if response.status_code != 200:
                body = b""
                for chunk in response.iter_bytes(CHUNK):
                    body += chunk
                    if len(body) >= ERROR_BODY_MAX:
                        break
                return detached(response, body[:ERROR_BODY_MAX])
            guard.check_length(response)
            received = 0
            with sink.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    guard.check_received(received)
                    out.write(chunk)
            return response
    raise guard.rejected(f"{guard.what}: more than {MAX_OUTPUT_REDIRECTS} redirects")


async def astream_to_file(
    http: httpx.AsyncClient, request: Mapping[str, Any], sink: Path, guard: DownloadGuard
) -> httpx.Response:
    """:func:`stream_to_file` for coroutines. File writes are small blocking calls: downloads happen on
    workers, the triggerer only polls."""
    url = httpx.URL(guard.url)
    for hop in range(MAX_OUTPUT_REDIRECTS + 1):
        if hop:
            guard.check_addresses(url, await aresolve(url.host, default_port(url)))
        async with http.stream(**{**request, "url": url}) as response:
            if hop:
                guard.check_peer(url, response)
            if response.is_redirect:
                url = guard.check_redirect(url, response)
                continue
            if response.status_code != 200:
                body = b""
                async for chunk in response.aiter_bytes(CHUNK):
                    body += chunk
                    if len(body) >= ERROR_BODY_MAX:
                        break
                return detached(response, body[:ERROR_BODY_MAX])
            guard.check_length(response)
            received = 0
            with sink.open("wb") as out:
                async for chunk in response.aiter_bytes(CHUNK):
                    received += len(chunk)
                    guard.check_received(received)
                    out.write(chunk)
            return response
    raise guard.rejected(f"{guard.what}: more than {MAX_OUTPUT_REDIRECTS} redirects")
