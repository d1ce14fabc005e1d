"""What every fake provider server shares: a loopback uvicorn in a thread (or a process), https with a throwaway
certificate, real media outputs, the broken answers a CDN can give, dropped connections, and the scheduler
arithmetic of a concurrency limit.

The fakes (``fake_runway``, ``fake_fal``) differ in their APIs — endpoints, bodies, errors, lifecycles — and
share everything below, so a fix to how outputs break or connections drop reaches both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import math
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: What output downloads can serve: the file, an HTML error page with 200, a body cut in half, or far too many
#: bytes (with an honest Content-Length, or chunked without one).
OUTPUT_BODIES = ("ok", "html", "truncated", "oversized", "oversized-chunked")
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>"
)
_SCOPE_SEND = "fake_http.send"
_SCOPE_RECEIVE = "fake_http.receive"
_VIDEO_CACHE_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------- media outputs


def png_bytes(ratio: str, seed: str, *, black: bool = False) -> bytes:
    """A real PNG of ``ratio`` (``W:H`` pixels): a colour and a centred rectangle drawn from ``seed``, or all black
    (what a safety checker leaves of an image it flagged)."""
    from PIL import Image, ImageDraw

    w, h = (int(v) for v in ratio.split(":"))
    digest = hashlib.sha256(seed.encode()).digest()
    img = Image.new("RGB", (w, h), (0, 0, 0) if black else tuple(digest[:3]))
    if not black:
        ImageDraw.Draw(img).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=tuple(digest[3:6]))
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()


def video_file(ratio: str, duration: int) -> Path:
    """A real H.264 MP4 (solid colour), made once per (ratio, duration), cached on disk across processes."""
    w, h = ratio.split(":")
    cache = Path(tempfile.gettempdir()) / "fake-runway-videos"
    cache.mkdir(exist_ok=True)
    target = cache / f"color_{w}x{h}_{duration}s.mp4"
    with _VIDEO_CACHE_LOCK:
        if target.exists():
            return target
        import imageio_ffmpeg

        part = cache / f".{target.name}.{uuid.uuid4().hex}.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"color=c=blue:s={w}x{h}:d={duration}:r=24",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
                str(part),
            ],
            check=True,
            capture_output=True,
        )
        part.replace(target)
        return target


def output_response(body: bytes, media: str, mode: str, oversize_bytes: int) -> Response:
    """An output as ``mode`` (one of :data:`OUTPUT_BODIES`) says: the file itself, or a broken answer."""
    if mode == "html":
        return Response(HTML_ERROR_PAGE, media_type="text/html")
    if mode == "truncated":
        return Response(body[: len(body) // 2], media_type=media)  # honest Content-Length, short file
    size = max(oversize_bytes, len(body))
    if mode == "oversized":
        return Response(body + b"\0" * (size - len(body)), media_type=media)
    if mode == "oversized-chunked":

        async def chunks() -> Any:
            yield body
            sent = len(body)
            while sent < size:
                piece = min(1 << 16, size - sent)
                sent += piece
                yield b"\0" * piece

        return StreamingResponse(chunks(), media_type=media)  # no Content-Length: only counting catches it
    return Response(body, media_type=media)


def redirect_target(request: Request, redirect: str) -> str:
    """Where an output download is sent first: ``same-host`` (this URL once more, one hop, relative),
    ``downgrade`` (the same URL over http://), ``loop`` (itself, forever) or any absolute URL."""
    hop = f"{request.url.query}&hop=1"
    if redirect == "same-host":
        return f"{request.url.path}?{hop}"  # relative: the client resolves it against the current URL
    if redirect == "downgrade":
        return str(request.url.replace(scheme="http", query=hop))
    if redirect == "loop":
        return str(request.url)
    return redirect


def s3_error(status: int, code: str, message: str) -> Response:
    """An error as an S3-style object store gives it (XML)."""
    xml = f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}</Code><Message>{message}</Message>"
    xml += "</Error>"
    return Response(xml, status_code=status, media_type="application/xml")


def retry_after_value(value: float | str) -> str:
    """A ``Retry-After`` header value: whole seconds without a fraction; a string as it is (for clients'
    parsers: ``nan``, a date, garbage)."""
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


# ------------------------------------------------------------------------------------ dropped connections


class Dropped(Response):
    """Closes the connection instead of answering; with ``partial`` it first sends headers and half the body
    (a download cut mid-stream). httpx sees ``RemoteProtocolError``/``ReadError``, like a real reset.

    Needs the app wrapped by :func:`keep_raw_channels` (it writes to the server's own send channel)."""

    def __init__(self, partial: bytes | None = None, media_type: str = "application/octet-stream") -> None:
        super().__init__(status_code=200, media_type=media_type)
        self.partial = partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope[_SCOPE_SEND]
        if self.partial is not None:
            await raw_send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", (self.media_type or "application/octet-stream").encode()),
                        (b"content-length", str(len(self.partial)).encode()),
                    ],
                }
            )
            await raw_send(
                {
                    "type": "http.response.body",
                    "body": self.partial[: len(self.partial) // 2],
                    "more_body": True,
                }
            )
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None:  # not uvicorn's h11/httptools cycle: break the response the portable way
            if self.partial is None:
                await raw_send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
                )
            raise ConnectionAbortedError("fake server: dropped connection")
        transport.close()
        # Wait until uvicorn has seen the disconnect, so it does not try to answer on our behalf.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while (await scope[_SCOPE_RECEIVE]())["type"] != "http.disconnect":
                    pass


def keep_raw_channels(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI app so :class:`Dropped` can reach the server's raw send/receive (middleware would hide them)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_SCOPE_SEND] = send
            scope[_SCOPE_RECEIVE] = receive
        await app(scope, receive, send)

    return asgi


# ---------------------------------------------------------------------------------------- concurrency


class Slot(Protocol):
    """Something that held a concurrency slot from ``started`` until ``end()``."""

    started: float | None

    def end(self) -> float: ...


def earliest_slot(started: Iterable[Slot], at: float, limit: int) -> float:
    """The first instant ≥ ``at`` when fewer than ``limit`` of ``started`` hold a slot."""
    if limit <= 0:
        return math.inf
    live = [t for t in started if t.end() > at]
    for x in sorted({at, *(t.end() for t in live)}):
        if sum(1 for t in live if t.started is not None and t.started <= x < t.end()) < limit:
            return x
    return math.inf  # pragma: no cover - the last end always frees a slot


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """The most ``(start, end)`` intervals overlapping at one instant (an end frees its slot before a start at
    the same instant takes it)."""
    events = sorted(
        [e for start, end in intervals for e in ((start, 1), (end, -1))], key=lambda e: (e[0], e[1])
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


# ------------------------------------------------------------------------------------------------ serving


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def uvicorn_config(app: ASGIApp, tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )


def self_signed(directory: Path, host: str, name: str = "fake-provider") -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` (an IP or a name) and its key, as PEM files in ``directory``."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class LoopbackServer:
    """A fake server's lifecycle: ``start``/``stop`` (or ``with``) runs ``app`` on a free loopback port in a
    background thread; ``tls=True`` serves https with a self-signed certificate (:meth:`ssl_context` trusts it).

    :param app: builds the ASGI app (called once, at start).
    :param name: the thread's and the certificate's name.
    """

    def __init__(
        self,
        app: Callable[[], ASGIApp],
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
    ) -> None:
        self._build_app, self._name = app, name
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tls_dir = tempfile.TemporaryDirectory(prefix=f"{name}-tls-") if tls else None
        #: With ``tls=True``: the server's self-signed certificate (trust it to talk to the fake over https).
        self.ca_file: Path | None = None
        self.base_url = ""

    def start(self) -> str:
        sock = listen(self._host, self._port)
        tls = None
        if self._tls_dir is not None:
            tls = self_signed(Path(self._tls_dir.name), self._host, self._name)
            self.ca_file = tls[0]
        self._server = uvicorn.Server(uvicorn_config(self._build_app(), tls))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} server did not start")
            time.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.base_url = f"{'https' if tls else 'http'}://{host}:{port}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        if self._tls_dir is not None:
            self._tls_dir.cleanup()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (``tls=True`` only)."""
        if self.ca_file is None:
            raise RuntimeError("this fake serves plain http (start it with tls=True)")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Run ``app`` in this process until SIGINT/SIGTERM, after printing its base URL on stdout (the first line a
    parent process reads)."""
    sock = listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"http://{bound_host}:{bound_port}", flush=True)
    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
