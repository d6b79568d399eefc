"""The post-render flow: manifest stream → Velero server ServiceAccount → role → annotation → stream."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from velero_irsa_postrender import stream
from velero_irsa_postrender.ensure import Target, ensure_role
from velero_irsa_postrender.errors import ConfigError, ManifestError
from velero_irsa_postrender.inject import ROLE_ARN_ANNOTATION, current_annotation, set_annotation
from velero_irsa_postrender.policy import POD_IDENTITY
from velero_irsa_postrender.role import RoleResult
from velero_irsa_postrender.settings import Settings, validate
from velero_irsa_postrender.velero import VeleroServer, attach_service_account, find_buckets, find_server

log = logging.getLogger(__name__)


def locate(manifests: bytes, settings: Settings) -> tuple[list[stream.Document], VeleroServer, Target]:
    """Split and scan the stream; find the server, its ServiceAccount document and the buckets."""
    documents = stream.split(manifests)
    if all(stream.is_blank(document) for document in documents):
        raise ManifestError("the manifest stream is empty", "check that the chart renders anything at all")
    # Parse only what can matter: Deployments that may run `velero server`, BackupStorageLocations,
    # and, once the server names it, its ServiceAccount (see stream.Document.may_hold).
    stream.parse_candidates(documents, [b"Deployment"], also=[stream.Scalar("server")])
    stream.parse_candidates(documents, [b"BackupStorageLocation"])

    with _broken_yaml_explains(documents):
        server = find_server(documents)
    if server.namespace is None:
        if not settings.namespace:
            raise ManifestError(
                f"the Velero Deployment {server.name} has no metadata.namespace",
                "pass --namespace with the release namespace",
            )
        server.namespace = settings.namespace
    _check_agrees(settings, server)
    stream.parse_candidates(documents, [b"ServiceAccount"], also=[stream.Scalar(server.service_account)])
    with _broken_yaml_explains(documents):
        attach_service_account(server, documents)
    target = Target(server.namespace, server.service_account, find_buckets(documents))
    _check_rendered_names(target)
    return documents, server, target


def _check_rendered_names(target: Target) -> None:
    """Names from the manifests meet the same rules as the flags, before they reach a trust policy."""
    checks: list[dict[str, Any]] = [{"namespace": target.namespace, "service-account": target.service_account}]
    for bucket in target.buckets:  # a prefix like `a*` would widen the policy inside the bucket
        location = {"bucket": bucket.name, "bucket-prefix": bucket.prefix, "region": bucket.region or None}
        checks.append({key: value for key, value in location.items() if value})
    try:
        for rendered in checks:
            validate(rendered, "the rendered Velero release")
    except ConfigError as error:
        raise ManifestError(error.message, "fix the chart values that rendered it") from None


@contextmanager
def _broken_yaml_explains(documents: list[stream.Document]) -> Iterator[None]:
    """On a manifest error, parse what was skipped first: a broken document is the better explanation."""
    try:
        yield
    except ManifestError:
        stream.parse_candidates(documents)
        raise


def _check_agrees(settings: Settings, server: VeleroServer) -> None:
    """Options that name a different ServiceAccount than the rendered one would break the trust."""
    if settings.namespace and settings.namespace != server.namespace:
        raise ConfigError(
            f"--namespace {settings.namespace} disagrees with the rendered Velero server, "
            f"which runs in namespace {server.namespace}",
            "drop --namespace (the manifests say where Velero runs) or render into that namespace",
        )
    if settings.service_account and settings.service_account != server.service_account:
        raise ConfigError(
            f"--service-account {settings.service_account} disagrees with the rendered Velero "
            f"server, which runs as {server.service_account}",
            "drop --service-account or set serviceAccount.server.name in the chart values",
        )


def post_render(manifests: bytes, settings: Settings) -> tuple[list[bytes | memoryview], RoleResult]:
    """The new stream (only the server ServiceAccount changed) and the role behind it.

    The stream comes back as a few pieces that are views of ``manifests`` (write them in order),
    so a large render is never copied.
    """
    documents, server, target = locate(manifests, settings)
    result = ensure_role(settings, target)
    # With EKS Pod Identity an association carries the role; an annotation would switch IRSA back on.
    role_arn = None if settings.mode == POD_IDENTITY else result.role_arn
    return annotate(documents, server, role_arn), result


def annotate(documents: list[stream.Document], server: VeleroServer, role_arn: str | None) -> list[bytes | memoryview]:
    """Put ``role_arn`` on the server ServiceAccount; None takes a role-arn annotation off."""
    document, body = server.service_account_document, server.service_account_object
    assert document is not None and body is not None  # attach_service_account guarantees both
    current = current_annotation(body)
    if role_arn is None and current is not None:
        log.warning(
            "removing the stale %s %s from ServiceAccount %s/%s: with pod identity an EKS association gives the role",
            ROLE_ARN_ANNOTATION,
            current,
            server.namespace,
            server.service_account,
        )
        replacement = set_annotation(document, body, None)
        return stream.pieces(documents, document, replacement)
    if current == role_arn:
        log.debug("ServiceAccount %s already carries %s", server.service_account, role_arn)
        return stream.pieces(documents)
    if current:
        log.warning(
            "replacing %s %s on ServiceAccount %s/%s with %s",
            ROLE_ARN_ANNOTATION,
            current,
            server.namespace,
            server.service_account,
            role_arn,
        )
    replacement = set_annotation(document, body, role_arn)
    log.info("annotated ServiceAccount %s/%s with %s", server.namespace, server.service_account, role_arn)
    return stream.pieces(documents, document, replacement)
