"""Helpers shared by the HTTP backends (no SDK imports here)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from ...errors import ConfigError, JudgeError
from .base import TransientBackendError

_TRANSPORT_NAMES = {"TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError"}


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an httpx-style connection, protocol or timeout error."""
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    return any(cls.__name__ in _TRANSPORT_NAMES for cls in type(exc).__mro__)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, if present and numeric."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # an HTTP date: fall back to our own backoff


def classify_status(status: int | None, message: str, headers: Any = None) -> JudgeError:
    """The error for an HTTP failure: transient for 408/409/429/5xx, final otherwise."""
    if status in (408, 409, 429) or (status is not None and status >= 500):
        return TransientBackendError(
            f"HTTP {status}: {message}", retry_after=retry_after_seconds(headers), status=status
        )
    hint = {
        401: "Check the API key (argument api_key or the environment variable).",
        403: "The key is not allowed to use this model.",
        404: "Check the model id and base_url.",
    }.get(status or 0)
    return JudgeError(f"HTTP {status}: {message}", hint=hint)


def api_key(
    option: str | None, env_names: tuple[str, ...], *, backend: str, required: bool
) -> str | None:
    """The API key from the option or the first set environment variable.

    Raises:
        ConfigError: If ``required`` and no key is found.
    """
    if option:
        return option
    for name in env_names:
        value = os.environ.get(name)
        if value:
            return value
    if required:
        raise ConfigError(
            f"The {backend!r} judge needs an API key, and none of {', '.join(env_names)} is set.",
            hint=f"export {env_names[0]}=... (keys are read from the environment and never stored).",
        )
    return None


def redact_url(url: str | None) -> str | None:
    """``url`` without user info or query string (they can carry credentials)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_reachable(url: str, *, backend: str, timeout: float = 3.0) -> None:
    """Open (and close) a TCP connection to the host and port of ``url``: no request is sent.

    A judge whose server is down would otherwise turn every sample of a run into a judge
    error. The SDKs reach the server through the proxy that ``HTTPS_PROXY``/``HTTP_PROXY``
    name unless ``NO_PROXY`` exempts the host (httpx's ``trust_env``, which the OpenAI and
    google-genai clients keep on), so the proxy is what must answer then.

    Raises:
        ConfigError: If ``url`` is not an http(s) address with a host.
        JudgeError: If nothing accepts a connection there within ``timeout`` seconds.
    """
    import urllib.request
    from urllib.parse import urlsplit

    def address(text: str) -> tuple[str, int]:
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            # shown without user info, query or fragment (they can carry credentials)
            shown = parts._replace(
                netloc=parts.netloc.rpartition("@")[2], query="", fragment=""
            ).geturl()
            raise ConfigError(
                f"The {backend!r} judge's base_url {shown!r} is not an http(s) "
                "address with a host and a valid port.",
                hint="Pass --judge-arg base_url=http://HOST:PORT/v1",
            )
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    host, port = address(url)
    proxy = urllib.request.getproxies().get(urlsplit(url).scheme)
    via = ""
    if proxy and not urllib.request.proxy_bypass(host):
        host, port = address(proxy if "://" in proxy else f"http://{proxy}")
        via = " (through the proxy set in the environment)"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise JudgeError(
            f"The {backend!r} judge's server at {host}:{port}{via} cannot be reached ({reason}).",
            hint="Start the server, or correct --judge-arg base_url, then run the same command "
            "again (finished work is kept).",
        ) from None
