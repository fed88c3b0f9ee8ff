"""botocore exceptions -> reasons, translated once, keeping the AWS error code.

A failed call is `aws_error` unless it is something more specific: `aws_auth` (no, invalid or
expired credentials, a bad signature, a role that cannot be assumed), `aws_throttled` (the API
rate limit, not an outage of the resource), `timeout`, or a transport reason (connection
refused, DNS) when the endpoint was never reached. The AWS error code ("AccessDenied",
"NoSuchBucket", "404" for a HEAD without a body) goes into `ProbeResult.error_code`,
which the exposition counts on `probed_probe_error_codes_total{probe,code}`. The set of codes an API
can return is finite (its model lists them), and anything that does not look like a code is
replaced, so the label stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoAuthTokenError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)

from probed.probes.common.errors import classify
from probed.redact import redact
from probed.result import ProbeResult, Reason

# Codes that mean "slow down", across the query, JSON and REST protocols (botocore's own list
# for its retry logic, plus the service-specific spellings).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})

# Codes that mean the caller is not who it claims to be (as opposed to AccessDenied: a known
# caller without the permission, which is an aws_error the operator fixes in IAM).
AUTH_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSignatureException",
    "IncompleteSignature", "IncompleteSignatureException", "MissingAuthenticationToken",
    "MissingAuthenticationTokenException", "InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "TokenRefreshRequired", "InvalidToken", "AuthFailure", "NotAuthorized",
    # AssumeRoleWithWebIdentity (IRSA) refusing the pod's token, raised through credential refresh
    "InvalidIdentityToken", "IDPRejectedClaim", "IDPCommunicationError",
})

_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound,
                      NoAuthTokenError, TokenRetrievalError, SSOError)
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_MESSAGE = 300

AWS_FAILURES: tuple[type[Exception], ...] = (
    BotoCoreError, ClientError, OSError, aiohttp.ClientError, TimeoutError,
)
"""What a check's calls raise when the target (not probed) is at fault; see `failure()`."""


class AssumeRoleFailed(Exception):
    """STS AssumeRole for `role_arn` failed: the probe's identity cannot be established."""

    def __init__(self, role_arn: str, code: str, message: str) -> None:
        super().__init__(f"cannot assume {role_arn}: {code}: {message}")
        self.role_arn = role_arn
        self.code = code


def error_code(exc: ClientError) -> str:
    """The AWS error code, bounded: HEAD responses carry none, so their HTTP status stands in."""
    error = exc.response.get("Error") or {}
    code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
    return code if _CODE.fullmatch(code) else "Unknown"


def failure(exc: BaseException, secrets: Iterable[str] = ()) -> ProbeResult:
    """The result for an exception raised by an AWS call (one of AWS_FAILURES or AssumeRoleFailed)."""
    if isinstance(exc, ClientError):
        return _client_error(exc, secrets)
    if isinstance(exc, AssumeRoleFailed):
        return with_code(Reason.AWS_AUTH, redact(str(exc), secrets), exc.code)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return with_code(Reason.AWS_AUTH, _message(exc, secrets), type(exc).__name__)
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
        return ProbeResult.fail(Reason.TIMEOUT, f"AWS API: {_message(exc, secrets)}")
    if isinstance(exc, EndpointConnectionError):
        # The underlying socket error says why (refused, DNS, unreachable) better than botocore.
        inner = exc.kwargs.get("error")
        if isinstance(inner, BaseException):
            reason, detail = classify(inner)
            if reason is not Reason.INTERNAL_ERROR:
                return ProbeResult.fail(reason, f"{detail} ({redact(str(exc.kwargs.get('endpoint_url')), secrets)})")
        return ProbeResult.fail(Reason.NETWORK_ERROR, _message(exc, secrets))
    if isinstance(exc, ConnectionClosedError):
        return ProbeResult.fail(Reason.CONNECTION_RESET, _message(exc, secrets))
    if isinstance(exc, (ParamValidationError, NoRegionError)):
        # The request never left: the configured parameters are not what the API accepts.
        return with_code(Reason.AWS_ERROR, _message(exc, secrets), type(exc).__name__)
    if isinstance(exc, BotoCoreError):
        return with_code(Reason.AWS_ERROR, _message(exc, secrets), type(exc).__name__)
    if isinstance(exc, aiohttp.ClientError) and not isinstance(exc, OSError):
        return ProbeResult.fail(Reason.CONNECTION_RESET, f"response interrupted: {_message(exc, secrets)}")
    reason, detail = classify(exc)
    return ProbeResult.fail(reason, redact(detail, secrets))


def _client_error(exc: ClientError, secrets: Iterable[str]) -> ProbeResult:
    code = error_code(exc)
    meta = exc.response.get("ResponseMetadata", {})
    message = (exc.response.get("Error") or {}).get("Message") or ""
    detail = f"{exc.operation_name}: {code}" + (f": {message}" if message else "")
    reason = Reason.AWS_ERROR
    if code in THROTTLING_CODES or meta.get("HTTPStatusCode") == 429:
        reason = Reason.AWS_THROTTLED
    elif code in AUTH_CODES:
        reason = Reason.AWS_AUTH
    facts: dict[str, object] = {"aws_error_code": code, "http_status": meta.get("HTTPStatusCode")}
    if meta.get("RequestId"):
        facts["request_id"] = meta["RequestId"]  # what AWS support asks for
    return with_code(reason, _clip(redact(detail, secrets)), code, facts)


def with_code(reason: Reason, detail: str, code: str, facts: dict[str, object] | None = None) -> ProbeResult:
    return ProbeResult.fail(reason, detail, error_code=code,
                            facts=facts if facts is not None else {"aws_error_code": code})


def _message(exc: BaseException, secrets: Iterable[str]) -> str:
    # Redact, then clip: a secret cut at the limit would no longer match, and its prefix would show.
    return _clip(redact(str(exc) or type(exc).__name__, secrets))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
