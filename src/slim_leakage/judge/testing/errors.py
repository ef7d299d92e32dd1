"""Error answers of the local protocol server, in each service's documented shape.

Every shape names its source:

- OpenAI: the ``Error`` schema of OpenAI's OpenAPI description (``openai/openai-openapi``,
  ``components.schemas.Error``: ``code``, ``message``, ``param`` and ``type`` all required,
  ``code`` and ``param`` nullable) inside ``ErrorResponse`` (``{"error": Error}``); a rate
  limit's ``code`` is ``rate_limit_exceeded``; the headers the openai SDK reads
  (``openai/_base_client.py`` ``BaseClient._parse_retry_after_header`` and ``_should_retry``):
  ``retry-after`` (an integer number of seconds, RFC 9110 ``delay-seconds``), ``retry-after-ms``
  and ``x-should-retry``.
- Gemini: ``google.rpc.Status`` as JSON (``{"error": {"code", "message", "status",
  "details"}}``, the Gemini API's error pages), ``status`` being the ``google.rpc.Code`` name
  of the HTTP status (``google/rpc/code.proto``, each code's "HTTP Mapping"), and the
  ``QuotaFailure`` / ``RetryInfo`` / ``Help`` details of ``google/rpc/error_details.proto``
  written as proto3 JSON, which omits fields at their zero value.
"""

from __future__ import annotations

import math

#: ``google.rpc.Code`` name of each HTTP status the server sends (``google/rpc/code.proto``:
#: INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ABORTED
#: 409, RESOURCE_EXHAUSTED 429, INTERNAL 500, UNIMPLEMENTED 501, UNAVAILABLE 503,
#: DEADLINE_EXCEEDED 504). 502 has no code of its own: a proxy's answer, read as UNKNOWN.
GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: OpenAI's ``type`` and ``code`` per status (the API reference's error codes page:
#: 401 ``invalid_api_key``, 404 ``model_not_found``, 429 ``rate_limit_exceeded``).
OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}

_MESSAGES = {
    400: "Invalid request.",
    401: "API key not valid. Please pass a valid API key.",
    403: "The caller does not have permission.",
    404: "The requested model was not found.",
    409: "The operation was aborted.",
    429: "Resource exhausted: slow down",
    500: "Internal error",
    501: "Operation is not implemented, or supported, or enabled.",
    503: "The model is overloaded. Please try again later.",
}

#: HTTP reason phrases of the statuses the server sends.
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_body(protocol: str, status: int) -> dict:
    """The error body ``protocol`` sends with an HTTP ``status``."""
    message = _MESSAGES.get(status, f"error {status}")
    if protocol == "gemini":
        # google.rpc.Status: the status is the code's enum name, UNKNOWN where none maps
        return {
            "error": {
                "code": status,
                "message": message,
                "status": GEMINI_STATUS.get(status, "UNKNOWN"),
            }
        }
    kind, code = OPENAI_ERRORS.get(status, ("server_error", None))
    # components.schemas.Error: all four fields present, param null when no parameter is at fault
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """``Retry-After`` as OpenAI sends it: whole seconds (rounded up, RFC 9110
    ``delay-seconds`` is an integer), with the exact wait in ``retry-after-ms``, which the
    openai SDK reads first."""
    if seconds is None:
        return {}
    return {
        "retry-after": str(max(0, math.ceil(seconds))),
        "retry-after-ms": str(max(0, round(seconds * 1000))),
    }


def gemini_rate_limit(
    model: str, *, retry_delay: float | None, daily: bool = False, limit: int = 20
) -> dict:
    """A Gemini 429 ``RESOURCE_EXHAUSTED`` body whose only wait is its ``RetryInfo`` detail.

    ``daily`` names a per-day quota in the ``QuotaFailure`` (no wait within a run helps);
    otherwise a per-minute one. ``retry_delay`` seconds go in ``RetryInfo.retryDelay`` in the
    protobuf ``Duration`` JSON form (``"36s"``). ``limit=0`` gives :func:`gemini_limit_zero`.
    """
    if limit == 0:
        return gemini_limit_zero(model, retry_delay=retry_delay if retry_delay is not None else 20)
    period = "Day" if daily else "Minute"
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
        "quotaId": f"GenerateRequestsPer{period}PerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": model},
        # QuotaFailure.Violation.quota_value is an int64: proto3 JSON writes it as a string
        "quotaValue": str(limit),
    }
    message = (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    )
    return _status_429(message, [violation], retry_delay)


def gemini_limit_zero(model: str, *, retry_delay: float = 20.04466179) -> dict:
    """The 429 of a key whose tier has no quota at all for ``model`` ("limit: 0").

    As public captures of real answers show it (google-gemini/gemini-cli issue 8437,
    continuedev/continue issues 9570 and 10062): the ``QuotaFailure`` violations carry no
    ``quotaValue`` (an int64 of 0, omitted by proto3 JSON), mix per-minute and per-day quota
    ids, and come with a short ``RetryInfo`` that no wait can honour.
    """
    free = "generativelanguage.googleapis.com/generate_content_free_tier"
    dims = {"location": "global", "model": model}
    violations = [
        {
            "quotaMetric": f"{free}_input_token_count",
            "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            "quotaDimensions": dims,
        },
        {
            "quotaMetric": f"{free}_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": dims,
        },
        {
            "quotaMetric": f"{free}_requests",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "quotaDimensions": dims,
        },
    ]
    lines = "".join(
        f"\n* Quota exceeded for metric: {v['quotaMetric']}, limit: 0, model: {model}"
        for v in violations
    )
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
        f"{lines}\nPlease retry in {retry_delay:g}s."
    )
    return _status_429(message, violations, retry_delay)


def _status_429(message: str, violations: list[dict], retry_delay: float | None) -> dict:
    details: list[dict] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay:g}s"}
        )
    return {
        "error": {
            "code": 429,
            "message": message,
            "status": "RESOURCE_EXHAUSTED",
            "details": details,
        }
    }


def openai_insufficient_quota() -> dict:
    """OpenAI's 429 body for an account without credit (``insufficient_quota``)."""
    return {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing "
            "details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
