"""A loopback stand-in for the EKS Pod Identity API, in front of the moto server.

Moto 5.2 answers CreatePodIdentityAssociation (and its siblings) with "not yet implemented", so
this small HTTP server on 127.0.0.1 serves those five EKS calls from memory and passes every
other request through to moto unchanged. Tests aim boto3 at it per service
(``AWS_ENDPOINT_URL_EKS``, and ``AWS_ENDPOINT_URL_IAM`` when they want a call refused): an
operation listed in ``deny`` (``"iam:CreateRole"``) is answered with AccessDenied, as AWS answers
a caller that lacks the permission.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ACCOUNT = "123456789012"
REGION = "eu-central-1"
_PATH = re.compile(r"^/clusters/(?P<cluster>[^/]+)/pod-identity-associations(?:/(?P<id>[^/]+))?/?$")
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "host", "keep-alive"}


class EksStub:
    """The server: ``endpoint`` for boto3, ``associations`` to look at, ``deny`` to refuse calls."""

    def __init__(self, moto_endpoint: str) -> None:
        self.moto = urlsplit(moto_endpoint)
        self.associations: dict[str, dict[str, Any]] = {}
        self.deny: set[str] = set()
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.associations.clear()
            self.deny.clear()
            self.calls.clear()

    def cluster_exists(self, cluster: str) -> bool:
        connection = http.client.HTTPConnection(self.moto.hostname, self.moto.port, timeout=10)
        try:
            # moto routes a request to a service by the credential scope of its signature.
            scope = f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/eks/aws4_request, Signature=0"
            connection.request("GET", f"/clusters/{cluster}", headers={"Authorization": scope})
            return connection.getresponse().status == 200
        finally:
            connection.close()

    # -- the five pod identity calls ----------------------------------------------------------

    def pod_identity(self, method: str, cluster: str, association_id: str | None, query: dict, body: dict):
        if not self.cluster_exists(cluster):
            return _error(404, "ResourceNotFoundException", f"No cluster found for name: {cluster}.")
        if association_id is None and method == "POST":
            return self._create(cluster, body)
        if association_id is None:
            return self._list(cluster, query)
        found = self.associations.get(association_id)
        if found is None or found["clusterName"] != cluster:
            return _error(404, "ResourceNotFoundException", f"Association {association_id} not found.")
        if method == "POST":
            found.update(roleArn=body.get("roleArn", found["roleArn"]), modifiedAt=time.time())
        elif method == "DELETE":
            del self.associations[association_id]
        return 200, {"association": found}

    def _create(self, cluster: str, body: dict):
        for existing in self.associations.values():
            same = (existing["clusterName"], existing["namespace"], existing["serviceAccount"])
            if same == (cluster, body.get("namespace"), body.get("serviceAccount")):
                return _error(409, "ResourceInUseException", "Association already exists.")
        association_id = "a-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(17))
        now = time.time()
        association = {
            "clusterName": cluster,
            "namespace": body["namespace"],
            "serviceAccount": body["serviceAccount"],
            "roleArn": body["roleArn"],
            "associationArn": f"arn:aws:eks:{REGION}:{ACCOUNT}:podidentityassociation/{cluster}/{association_id}",
            "associationId": association_id,
            "tags": body.get("tags") or {},
            "createdAt": now,
            "modifiedAt": now,
        }
        self.associations[association_id] = association
        return 200, {"association": association}

    def _list(self, cluster: str, query: dict):
        wanted = {key: query[key][0] for key in ("namespace", "serviceAccount") if key in query}
        summaries = [
            {key: a[key] for key in ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")}
            for a in self.associations.values()
            if a["clusterName"] == cluster and all(a[key] == value for key, value in wanted.items())
        ]
        return 200, {"associations": summaries}


def _error(status: int, code: str, message: str):
    return status, {"__type": code, "message": message}


_OPERATIONS = {("POST", False): "Create", ("GET", False): "List", ("GET", True): "Describe"}
_OPERATIONS.update({("POST", True): "Update", ("DELETE", True): "Delete"})


def _handler(stub: EksStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # keep pytest output clean
            return

        def do_GET(self) -> None:
            self._serve()

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            match = _PATH.match(unquote(url.path))
            operation = self._operation(match, body)
            with stub.lock:
                stub.calls.append(operation)
                denied = operation in stub.deny
            if denied:
                self._deny(operation)
            elif match:
                status, payload = stub.pod_identity(
                    self.command, match["cluster"], match["id"], parse_qs(url.query), json.loads(body or b"{}")
                )
                self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"}, payload)
            else:
                self._proxy(body)

        def _operation(self, match: re.Match | None, body: bytes) -> str:
            if match:
                verb = _OPERATIONS.get((self.command, match["id"] is not None), "Unknown")
                return f"eks:{verb}PodIdentityAssociation"
            scope = _SCOPE.search(self.headers.get("Authorization") or "")
            service = scope["service"] if scope else "?"
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
            # REST calls moto serves (eks:DescribeCluster, s3) are named by method and path.
            return f"{service}:{action}" if action else f"{service}:{self.command} {urlsplit(self.path).path}"

        def _deny(self, operation: str) -> None:
            service = operation.split(":", 1)[0]
            message = f"User: arn:aws:iam::{ACCOUNT}:user/ci is not authorized to perform: {operation}"
            if service == "eks":
                body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
                self._reply(403, body, {"Content-Type": "application/json"}, {"__type": "AccessDeniedException"})
                return
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                f"<Message>{message}</Message></Error><RequestId>stub</RequestId></ErrorResponse>"
            ).encode()
            self._reply(403, body, {"Content-Type": "text/xml"}, {})

        def _reply(self, status: int, body: bytes, headers: dict[str, str], payload: dict) -> None:
            self.send_response(status)
            if "__type" in payload:
                self.send_header("x-amzn-ErrorType", payload["__type"])
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _proxy(self, body: bytes) -> None:
            connection = http.client.HTTPConnection(stub.moto.hostname, stub.moto.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
                self._reply(response.status, data, kept, {})
            finally:
                connection.close()

    return Handler
