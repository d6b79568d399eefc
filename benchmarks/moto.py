"""A moto server on 127.0.0.1 that counts the requests it serves, and the AWS state a Velero install needs.

The count is the server's own: every HTTP request that reached it, so retries count too. The
client's view (one line per API call in velero-irsa's debug log) is read separately and the two
must agree.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from velero_irsa_postrender.aws import is_write

ACCOUNT = "123456789012"
CLUSTER = "prod-eu"
BUCKET = "velero-prod-eu"


@dataclass(frozen=True)
class Request:
    service: str
    operation: str
    write: bool


@dataclass
class Counter:
    """WSGI middleware: notes service, operation and read/write of each request, then serves it."""

    app: Any
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            request = self._describe(environ)
            with self.lock:
                self.requests.append(request)
        return self.app(environ, start_response)

    def _describe(self, environ: dict[str, Any]) -> Request:
        # SigV4: "Credential=<key>/<date>/<region>/<service>/aws4_request"
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        scope = authorization.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        service = scope[3] if len(scope) > 4 else "?"
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        query = urllib.parse.parse_qs(body.decode("utf-8", "replace")) | urllib.parse.parse_qs(
            environ.get("QUERY_STRING", "")
        )
        action = (query.get("Action") or [""])[0]
        method = environ.get("REQUEST_METHOD", "GET")
        if action:
            return Request(service, action, is_write(action))
        return Request(service, f"{method} {environ.get('PATH_INFO', '')}", method not in ("GET", "HEAD"))

    def take(self) -> list[Request]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


@contextlib.contextmanager
def counting_moto() -> Iterator[tuple[str, Counter]]:
    """A moto server on 127.0.0.1 (any free port), its endpoint and its request counter."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request on stderr otherwise
    counter = Counter(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, counter, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", counter
    finally:
        server.shutdown()
        thread.join()


def arrange_cluster(endpoint: str) -> None:
    """An EKS cluster with its IAM OIDC provider and the fixtures' backup bucket, as a real account has."""
    import urllib.request

    import boto3

    # moto keeps its state per process: start from an empty account even if another server ran here.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).read()

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="eu-central-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )

    eks = client("eks")
    eks.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={})
    issuer = eks.describe_cluster(name=CLUSTER)["cluster"]["identity"]["oidc"]["issuer"]
    client("iam").create_open_id_connect_provider(
        Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
    )
    client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
