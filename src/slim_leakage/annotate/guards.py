"""What keeps the labelling server honest: same-origin JSON only, one writer at a time on a
labels file, and the toy world's legend.

Same origin: a page on another site can make the annotator's browser POST to
``127.0.0.1:PORT`` (a "simple" cross-site request needs no CORS preflight when its type is
``text/plain`` or a form). The server therefore takes a label only as
``Content-Type: application/json`` (which a cross-site page cannot send without a preflight
this server never answers), refuses a request whose ``Origin`` is not the server's own or whose
``Sec-Fetch-Site`` is ``cross-site``/``same-site`` (Fetch Metadata, sent by current browsers),
and a ``Host`` other than 127.0.0.1/localhost at its port (DNS rebinding). Requests that carry
neither ``Origin`` nor ``Sec-Fetch-Site`` come from a non-browser client and are taken.
Sources: the Fetch standard's CORS-safelisted request headers (fetch.spec.whatwg.org,
"CORS-safelisted request-header": ``Content-Type`` only ``application/x-www-form-urlencoded``,
``multipart/form-data`` or ``text/plain``) and the W3C Fetch Metadata Request Headers
(w3c.github.io/webappsec-fetch-metadata: ``Sec-Fetch-Site`` values ``cross-site``,
``same-origin``, ``same-site``, ``none``).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

#: Host names the server answers to (it binds 127.0.0.1 only).
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def request_problem(headers: Mapping[str, str], port: int) -> str | None:
    """Why a POST must be refused (``None``: it may be taken).

    Args:
        headers: The request's headers (case-insensitive mapping, as http.server gives).
        port: The port the server listens on.
    """
    host = (headers.get("Host") or "").strip().lower()
    if host and host not in {f"{h}:{port}" for h in LOCAL_HOSTS}:
        return f"Host {host!r} is not this server (127.0.0.1:{port})"
    media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media != "application/json":
        return f"Content-Type {media or '(none)'!r} is not application/json"
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site {site!r}: the request comes from another site"
    origin = (headers.get("Origin") or "").strip()
    if origin:
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS or parts.port != port:
            return f"Origin {origin!r} is not this page's (http://127.0.0.1:{port})"
    return None


@contextlib.contextmanager
def locked(labels_path: Path) -> Iterator[None]:
    """Hold the labels file's lock (``<labels>.lock``, an OS lock released if the holder
    dies) while reading and writing it, so that two servers on one file never write
    contradictory rows."""
    lock_path = labels_path.with_name(labels_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def toy_legend(entities: list[str]) -> list[dict] | None:
    """For toy-world samples, each entity's look (shape, colour, pattern), else ``None``."""
    from ..toy.world import ENTITY_TYPES

    if not entities or any(e not in ENTITY_TYPES for e in entities):
        return None
    return [
        {
            "entity": e,
            "shape": ENTITY_TYPES[e].shape,
            "pattern": ENTITY_TYPES[e].pattern,
            "image": f"/legend/{e}.png",
        }
        for e in entities
    ]


def legend_png(entity: str, size: int = 64) -> bytes:
    """A toy entity drawn alone in the middle of the image, as a PNG."""
    from PIL import Image

    from ..toy.world import ENTITY_TYPES, Placement, render

    if entity not in ENTITY_TYPES:
        raise KeyError(entity)
    scene = render([Placement(entity, size / 2, size / 2, size * 0.3)], size=size)
    buf = io.BytesIO()
    Image.fromarray(scene.image).save(buf, format="PNG")
    return buf.getvalue()
