"""The one place that builds AWS clients, and the one place that turns AWS failures into words.

boto3 is imported here and only here, and only when a command really talks to AWS, so the
``--role-arn`` post-render path never pays for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from velero_irsa_postrender.errors import AwsError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_MODES = ("standard", "adaptive")
# Read calls a run may make; everything else counts as a write (dry runs make none).
READ_PREFIXES = ("Get", "List", "Describe", "Head")


class Clients:
    """One boto3 session, one client per service, created on first use."""

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        on_call: Callable[[str, str], None] | None = None,
        fallback_region: str | None = None,
    ) -> None:
        self._region, self._profile, self._on_call = region, profile, on_call
        self._fallback_region = fallback_region
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            # The AWS CLI and SDKs read AWS_REGION; botocore itself only reads AWS_DEFAULT_REGION.
            region = self._region or os.environ.get("AWS_REGION") or None
            with translated("start an AWS session"):
                self._session = boto3.Session(profile_name=self._profile, region_name=region)
        return self._session

    @property
    def region(self) -> str | None:
        """The configured region (flag, AWS_REGION, profile), else the fallback (a bucket's region)."""
        return self.session.region_name or self._fallback_region

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                retries=retry_settings(),
                connect_timeout=10,
                read_timeout=30,
                user_agent_extra="velero-irsa",
            )
            with translated(f"create the {service} client"):
                client = self.session.client(service, region_name=self.region, config=config)
            client.meta.events.register("before-call.*.*", self._before_call)
            self._clients[service] = client
            self._hide_credentials()
        return self._clients[service]

    def _hide_credentials(self) -> None:
        """Register the secret key and session token with the log redactor; the client has resolved them."""
        from velero_irsa_postrender.log import add_secret

        credentials = self.session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            add_secret(frozen.secret_key)
            add_secret(frozen.token)

    def _before_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        log.debug("AWS call %s:%s", service, model.name)
        if self._on_call:
            self._on_call(service, model.name)

    @property
    def iam(self) -> Any:
        return self.client("iam")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def eks(self) -> Any:
        return self.client("eks")

    @property
    def sts(self) -> Any:
        return self.client("sts")


def retry_settings() -> dict[str, Any]:
    """botocore's ``standard`` retries (or ``adaptive``), 8 attempts in all; AWS_RETRY_MODE, AWS_MAX_ATTEMPTS tune them.

    The explicit Config would otherwise hide the SDK's own variables, which users expect to work.
    """
    mode = os.environ.get("AWS_RETRY_MODE", "").strip().lower() or "standard"
    if mode not in RETRY_MODES:
        log.warning("AWS_RETRY_MODE=%s is not one of %s; using standard", mode, ", ".join(RETRY_MODES))
        mode = "standard"
    text = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not text:
        return {"mode": mode, "total_max_attempts": MAX_ATTEMPTS}
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise AwsError(f"AWS_MAX_ATTEMPTS={text} is not a number from 1 to 50", "unset it or fix it")
    return {"mode": mode, "total_max_attempts": int(text)}


def error_code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def is_code(error: BaseException, *codes: str) -> bool:
    return error_code(error) in codes


def is_write(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def http_status(error: BaseException) -> int:
    response = getattr(error, "response", None) or {}
    return int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)


_THROTTLED = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown")

_DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "403",  # S3's HeadBucket answers a denied s3:ListBucket with a bare status code
)


@contextmanager
def translated(doing: str, action: str = "") -> Iterator[None]:
    """Turn botocore failures into an AwsError that says what we were doing and what to try."""
    from botocore import exceptions as bx

    try:
        yield
    except bx.ClientError as error:
        code = error_code(error)
        message = (error.response.get("Error") or {}).get("Message") or code
        if code in _DENIED:
            denied = f" ({action} was denied)" if action else ""
            raise AwsError(
                f"AWS refused to {doing}{denied}: {code}: {message}",
                f"grant the caller {action or 'the permission'} or use a profile that has it (AWS_PROFILE / --profile)",
            ) from None
        if code in _THROTTLED:
            raise AwsError(
                f"AWS kept throttling while trying to {doing} ({code})", "retry later; the run is safe to repeat"
            ) from None
        if http_status(error) >= 500:
            raise AwsError(
                f"AWS kept failing while trying to {doing} (HTTP {http_status(error)} {code})",
                "retry later; the run is safe to repeat",
            ) from None
        raise
    except bx.NoCredentialsError:
        raise AwsError(
            f"no AWS credentials found to {doing}",
            "set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`",
        ) from None
    except bx.ProfileNotFound as error:
        raise AwsError(str(error), "check --profile / AWS_PROFILE against ~/.aws/config") from None
    except bx.NoRegionError:
        raise AwsError(f"no AWS region set to {doing}", "pass --region or set AWS_REGION") from None
    except bx.EndpointConnectionError as error:
        raise AwsError(
            f"cannot reach the AWS endpoint to {doing} ({error})", "check the network, AWS_ENDPOINT_URL and the region"
        ) from None
    except (bx.ConnectionClosedError, bx.ReadTimeoutError, bx.ConnectTimeoutError) as error:
        raise AwsError(
            f"the connection to AWS failed while trying to {doing} ({type(error).__name__})",
            "retry; the run is safe to repeat",
        ) from None
    except bx.TokenRetrievalError as error:
        raise AwsError(
            f"AWS credentials could not be refreshed to {doing} ({error})", "log in again, e.g. `aws sso login`"
        ) from None
    except (bx.HTTPClientError, bx.ConnectionError) as error:
        raise AwsError(
            f"the connection to AWS failed while trying to {doing} ({type(error).__name__})",
            "retry; the run is safe to repeat",
        ) from None
    except bx.ParamValidationError as error:
        reason = " ".join(str(error).split())[:300]
        raise AwsError(f"cannot {doing}: a value is not valid for AWS ({reason})", "fix the value it names") from None


@contextmanager
def explained(doing: str) -> Iterator[None]:
    """The last net: an AWS error code that no caller branched on still becomes one readable line."""
    from botocore import exceptions as bx

    try:
        yield
    except bx.ClientError as error:
        code = error_code(error) or "error"
        message = " ".join(str((error.response.get("Error") or {}).get("Message") or "").split())[:300]
        raise AwsError(
            f"AWS answered {code} to {error.operation_name} while trying to {doing}: {message}",
            "fix what the message names and run again; the run is safe to repeat",
        ) from None
