"""Helpers shared by the HTTP backends (no SDK imports here)."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import os
import socket
import time
from typing import Any

from ...errors import ConfigError, JudgeError
from .base import TransientBackendError

_TRANSPORT_NAMES = {"TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError"}


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an httpx-style connection, protocol or timeout error."""
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    return any(cls.__name__ in _TRANSPORT_NAMES for cls in type(exc).__mro__)


#: Statuses the openai SDK retries (``openai/_base_client.py`` ``BaseClient._should_retry``:
#: 408, 409, 429 and every 5xx), unless the server's ``x-should-retry`` header says otherwise.
OPENAI_RETRY = frozenset({408, 409, 429})
#: Statuses the google-genai SDK retries (``google/genai/_api_client.py``
#: ``_RETRY_HTTP_STATUS_CODES``): 409 (ABORTED) and 501 (NOT_IMPLEMENTED) are final there.
GEMINI_RETRY = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds a server asks to wait, from its headers, or ``None`` when it does not say.

    Read as the openai SDK reads them (``openai/_base_client.py``
    ``BaseClient._parse_retry_after_header``): ``retry-after-ms`` first, then ``retry-after``
    as a number of seconds, then ``retry-after`` as an HTTP date (RFC 9110 section 10.2.3,
    ``Retry-After = HTTP-date / delay-seconds``), counted from ``now`` (default: the clock).
    """
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT (RFC 9110 section 5.6.7)
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def should_retry_header(headers: Any) -> bool | None:
    """The server's ``x-should-retry`` verdict (``true``/``false``), else ``None``.

    The openai SDK obeys it before any status rule (``openai/_base_client.py``
    ``BaseClient._should_retry``); OpenAI's servers send it on errors.
    """
    value = headers.get("x-should-retry") if headers is not None else None
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def classify_status(
    status: int | None,
    message: str,
    headers: Any = None,
    *,
    retryable: frozenset[int] = OPENAI_RETRY,
    any_5xx: bool = True,
    obey_header: bool = True,
) -> JudgeError:
    """The error for an HTTP failure: transient or final, as the provider's SDK decides.

    Args:
        status: The HTTP status.
        message: The error message (shortened by the caller).
        headers: The response headers (``Retry-After``, ``x-should-retry``).
        retryable: Statuses retried (:data:`OPENAI_RETRY`, :data:`GEMINI_RETRY`).
        any_5xx: Whether every status >= 500 is retried too (the openai SDK's rule).
        obey_header: Whether ``x-should-retry`` overrides the status rules.
    """
    verdict = should_retry_header(headers) if obey_header else None
    transient = status in retryable or (any_5xx and status is not None and status >= 500)
    if verdict is not None:
        transient = verdict
    if transient:
        return TransientBackendError(
            f"HTTP {status}: {message}", retry_after=retry_after_seconds(headers), status=status
        )
    hint = {
        401: "Check the API key (argument api_key or the environment variable).",
        403: "The key is not allowed to use this model.",
        404: "Check the model id and base_url.",
    }.get(status or 0)
    if verdict is False and hint is None:
        hint = "The server said not to retry this request (x-should-retry: false)."
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
