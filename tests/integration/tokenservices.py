"""
The clouds' token services, for the tests of multistore as an OpenID Connect
identity provider: multistore signs short JWTs, publishes its keys, and
trades the JWTs for backend credentials at these services.

L{start_entra} is a Microsoft Entra token endpoint
(C{/{tenant}/oauth2/v2.0/token}) taking a client assertion from another
identity provider (workload identity federation) and answering with an
access token for Azure Storage. L{start_gcp} is Google's Security Token
Service (C{/v1/token}, RFC 8693 token exchange) and the IAM Service Account
Credentials API (C{.../serviceAccounts/EMAIL:generateAccessToken}).

Both fetch the issuer's key set and I{verify} every token they are given
(signature by the key its C{kid} names, C{iss}, C{aud}, C{exp}, C{nbf},
C{iat}, and the subject when told one), as the real services do, and refuse
in the real services' error shapes. They run in a thread of the test
process, like L{tests.integration.oidc}: a test counts the requests each
endpoint got (C{hits}), reads what was sent (C{requests}), makes the next
answers fail (C{fail_next}), slow (C{slow}) or the whole service unreachable
(C{stop}, then C{start} on the same port).

Storage behind them: L{start_azurite_oauth} runs Azurite with
C{--oauth basic} over HTTPS. Azurite checks a bearer token's claims but not
its signature (see L{start_azurite_oauth}), so the access tokens the fake
Entra issues are JWTs shaped like Entra's for Azure Storage.
fake-gcs-server checks no credentials at all, so L{start_gcp} can put a
guard in front of it (C{storage_upstream}) that refuses any request whose
bearer token the fake IAM (or STS) did not issue, as Google Cloud Storage
would.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import jwt
from attrs import define, field, frozen

from tests.integration.emulators import (
    AZURITE_ACCOUNT,
    AZURITE_API_VERSION,
    RunningEmulator,
    azurite_main,
)
from tests.integration.oidc import SYSTEM_CA_BUNDLE, SigningKey
from tests.integration.servers import (
    BACKEND_START_TIMEOUT,
    LOCALHOST,
    ServerProcess,
    ServerStartError,
    free_port,
    make_certificate,
)

# --- names the services use --------------------------------------------------

#: The C{aud} Entra expects of a federated client assertion by default.
AZURE_EXCHANGE_AUDIENCE: Final = "api://AzureADTokenExchange"

#: The scope of an access token for Azure Storage, and the token's C{aud}.
AZURE_STORAGE_SCOPE: Final = "https://storage.azure.com/.default"
AZURE_STORAGE_AUDIENCE: Final = "https://storage.azure.com"

#: C{client_assertion_type} of a JWT client assertion (RFC 7523).
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: RFC 8693 names Google's STS takes and gives.
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"

#: The scope multistore asks Google for.
GCP_CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"

#: Endpoint names, for C{hits}, C{requests} and C{fail_next}.
ENTRA_TOKEN: Final = "token"
GCP_STS: Final = "sts"
GCP_IAM: Final = "iam"
GCP_STORAGE: Final = "storage"

#: The algorithms both clouds accept for a federated token.
FEDERATION_ALGORITHMS: Final = ("RS256", "ES256")

#: Where an issuer's discovery document is, below its URL.
DISCOVERY_SUFFIX: Final = "/.well-known/openid-configuration"

#: Google refuses a subject token that lives longer than this after C{iat}.
GOOGLE_MAX_SUBJECT_TOKEN_LIFETIME: Final = 48 * 3600

#: The longest access token generateAccessToken gives without an
#: organization policy, and its default.
GOOGLE_MAX_ACCESS_TOKEN_LIFETIME: Final = 3600

#: Seconds a key set fetch may take.
_FETCH_TIMEOUT: Final = 5.0

#: Largest request body the services read.
_MAX_BODY: Final = 64 * 1024 * 1024

_PROVIDER = re.compile(
    r"^//iam\.googleapis\.com/projects/\d+/locations/global/"
    r"workloadIdentityPools/[^/]+/providers/[^/]+$"
)
_ENTRA_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_IAM_PATH = re.compile(
    r"^/v1/projects/([^/]+)/serviceAccounts/([^/]+):generateAccessToken$"
)
_DURATION = re.compile(r"^(\d+)(?:\.\d{1,9})?s$")

# JSON field names of the STS request (proto3 JSON takes either spelling).
_CAMEL = {
    "grantType": "grant_type",
    "requestedTokenType": "requested_token_type",
    "subjectToken": "subject_token",
    "subjectTokenType": "subject_token_type",
}

_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# --- TLS ----------------------------------------------------------------------


@frozen
class TLSMaterial:
    """
    A throwaway CA and a server certificate it signs for 127.0.0.1, shared by
    every service that is given it, so that one C{SSL_CERT_FILE}
    (L{ca_bundle}) lets a daemon trust all of them.

    :ivar ca_path: the CA certificate.
    :ivar cert_path: the server certificate.
    :ivar key_path: its key.
    :ivar ca_bundle: the system's CA certificates and L{ca_path}.
    """

    ca_path: Path
    cert_path: Path
    key_path: Path
    ca_bundle: Path

    def server_context(self) -> ssl.SSLContext:
        """
        :return: a server context with the certificate.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """
        :return: a client context trusting only the CA.
        """
        return ssl.create_default_context(cafile=str(self.ca_path))


def make_tls(directory: Path) -> TLSMaterial:
    """
    Make TLS material in ``directory`` (see L{make_certificate}).

    :return: the material.
    """
    ca_path, cert_path, key_path = make_certificate(directory)
    bundle = directory / "ca-bundle.pem"
    system = SYSTEM_CA_BUNDLE.read_bytes() if SYSTEM_CA_BUNDLE.exists() else b""
    bundle.write_bytes(system + b"\n" + ca_path.read_bytes())
    return TLSMaterial(ca_path, cert_path, key_path, bundle)


# --- verifying federated tokens ----------------------------------------------


class TokenRefused(Exception):
    """
    A federated token did not pass verification.

    :ivar reason: why, one of C{malformed}, C{algorithm}, C{issuer},
        C{no_kid}, C{keys_unavailable}, C{unknown_kid}, C{signature},
        C{missing_claim}, C{expired}, C{not_yet_valid}, C{too_long},
        C{audience}, C{subject}.
    :ivar detail: a sentence for the error description.
    :ivar claims: the token's claims as far as they could be read.
    """

    def __init__(self, reason: str, detail: str, claims: Mapping[str, Any]) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.claims = dict(claims)


@define
class TokenVerifier:
    """
    Verifies a JWT the way a cloud verifies a federated token: the issuer
    first (it says which trust applies), then the signature with the key of
    the header's C{kid} from the issuer's key set, then the times and the
    audience and subject.

    The key set is fetched anew for every token unless L{cache_seconds} says
    otherwise (the real services cache it for a while: a key must be
    published before it signs).

    :ivar issuer: the C{iss} required.
    :ivar audiences: the C{aud} values accepted (any one).
    :ivar subject: the C{sub} required; any if None.
    :ivar jwks_url: where the key set is; found through the issuer's
        discovery document if None.
    :ivar jwks_ca: the CA to trust for an C{https} key set URL; the system's
        if None.
    :ivar max_lifetime: the longest C{exp - iat} accepted, in seconds.
    :ivar leeway: seconds of clock skew allowed.
    :ivar cache_seconds: how long a fetched key set is used, even for a
        C{kid} it lacks.
    """

    issuer: str
    audiences: tuple[str, ...]
    subject: str | None = None
    jwks_url: str | None = None
    jwks_ca: Path | None = None
    max_lifetime: int | None = None
    leeway: int = 0
    cache_seconds: float = 0.0
    _fetches: int = 0
    _cached: tuple[float, dict[str, Any]] | None = None
    _lock: threading.Lock = field(factory=threading.Lock)

    @property
    def fetches(self) -> int:
        """
        :return: how many times the key set (or discovery document) was
            fetched.
        """
        with self._lock:
            return self._fetches

    def _get(self, url: str) -> Any:
        with self._lock:
            self._fetches += 1
        context = None
        if url.startswith("https:"):
            context = ssl.create_default_context(
                cafile=str(self.jwks_ca) if self.jwks_ca else None
            )
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT, context=context) as r:
            return json.loads(r.read(1024 * 1024))

    def key_set(self) -> dict[str, Any]:
        """
        :return: the issuer's key set, fetched now.
        :raise OSError, ValueError: if it cannot be had.
        """
        with self._lock:
            cached = self._cached
        if cached is not None and time.monotonic() < cached[0] + self.cache_seconds:
            return cached[1]
        url = self.jwks_url
        if url is None:
            document = self._get(self.issuer.rstrip("/") + DISCOVERY_SUFFIX)
            url = document["jwks_uri"]
            if not isinstance(url, str):
                raise ValueError("jwks_uri is not a string")
        keys = self._get(url)
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise ValueError("not a key set")
        with self._lock:
            self._cached = (time.monotonic(), keys)
        return keys

    def verify(self, token: str) -> dict[str, Any]:
        """
        :return: the claims of ``token``.
        :raise TokenRefused: if it does not pass.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as e:
            raise TokenRefused("malformed", f"the token is malformed: {e}", {}) from e
        claims: dict[str, Any] = dict(unverified)
        algorithm = header.get("alg")
        if algorithm not in FEDERATION_ALGORITHMS:
            raise TokenRefused(
                "algorithm", f"algorithm {algorithm!r} is not accepted", claims
            )
        if claims.get("iss") != self.issuer:
            raise TokenRefused(
                "issuer", f"issuer {claims.get('iss')!r} is not trusted", claims
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefused("no_kid", "the token names no key (kid)", claims)
        try:
            keys = self.key_set()
        except (OSError, ValueError, KeyError) as e:
            raise TokenRefused(
                "keys_unavailable",
                f"the issuer's keys could not be fetched: {e}",
                claims,
            ) from e
        matching = [
            k for k in keys["keys"] if isinstance(k, dict) and k.get("kid") == kid
        ]
        if not matching:
            raise TokenRefused(
                "unknown_kid", f"no published key has kid {kid!r}", claims
            )
        try:
            key = jwt.PyJWK(matching[0], algorithm=algorithm)
            verified = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                leeway=self.leeway,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.ExpiredSignatureError as e:
            raise TokenRefused("expired", "the token has expired", claims) from e
        except jwt.ImmatureSignatureError as e:
            raise TokenRefused("not_yet_valid", f"the token {e}", claims) from e
        except jwt.MissingRequiredClaimError as e:
            raise TokenRefused("missing_claim", str(e), claims) from e
        except (jwt.InvalidTokenError, jwt.PyJWKError) as e:
            raise TokenRefused(
                "signature", f"the signature does not verify: {e}", claims
            ) from e
        claims = dict(verified)
        if (
            self.max_lifetime is not None
            and int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime
        ):
            raise TokenRefused(
                "too_long", f"the token lives longer than {self.max_lifetime}s", claims
            )
        audience = claims["aud"]
        presented = [audience] if isinstance(audience, str) else list(audience)
        if not set(presented) & set(self.audiences):
            raise TokenRefused(
                "audience", f"audience {audience!r} is not accepted", claims
            )
        if self.subject is not None and claims["sub"] != self.subject:
            raise TokenRefused(
                "subject", f"subject {claims['sub']!r} is not accepted", claims
            )
        return claims


# --- the HTTP plumbing shared by the services --------------------------------


@frozen
class Reply:
    """
    An answer a service sends.

    :ivar status: the status code.
    :ivar body: the body.
    :ivar headers: further headers.
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, status: int, document: Any, headers: Sequence[tuple[str, str]] = ()
    ) -> Reply:
        """
        :return: a JSON answer.
        """
        return cls(
            status,
            json.dumps(document).encode(),
            (("Content-Type", "application/json; charset=utf-8"), *headers),
        )


@frozen
class Recorded:
    """
    A request a service got.

    :ivar endpoint: which of its endpoints it was for.
    :ivar method: its method.
    :ivar path: its path and query.
    :ivar headers: its headers, names in lower case (the last of repeated
        ones).
    :ivar body: its body.
    """

    endpoint: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def params(self) -> dict[str, Any]:
        """
        :return: the body's parameters: a JSON object as it is, else the
            form fields (the last of repeated ones).
        """
        content_type = self.headers.get("content-type", "").split(";")[0].strip()
        if content_type.endswith("json"):
            try:
                document = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            return document if isinstance(document, dict) else {}
        return self.form()

    def form(self) -> dict[str, str]:
        """
        :return: the body's form fields (the last of repeated ones).
        """
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace")))

    def bearer(self) -> str | None:
        """
        :return: the bearer token of its C{Authorization} header, if any.
        """
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@define
class _HTTPService:
    """
    A threaded HTTP(S) server on 127.0.0.1 answering with the routes a
    subclass gives, with the test controls of the module docstring.
    """

    tls: TLSMaterial | None = None
    _port: int = 0
    _hits: Counter[str] = field(factory=Counter)
    _requests: list[Recorded] = field(factory=list)
    _failures: deque[tuple[str | None, Reply]] = field(factory=deque)
    _delay: float = 0.0
    _wake: threading.Event = field(factory=threading.Event)
    _lock: threading.RLock = field(factory=threading.RLock)
    _server: _Server | None = None
    _thread: threading.Thread | None = None
    _connections: set[socket.socket] = field(factory=set)

    # -- what a subclass says

    def endpoint_of(self, method: str, path: str) -> str | None:
        """
        :return: the name of the endpoint a request is for; None for 404.
        """
        raise NotImplementedError

    def answer(self, request: Recorded) -> Reply:
        """
        :return: the answer to ``request``.
        """
        raise NotImplementedError

    # -- what a test uses

    @property
    def url(self) -> str:
        """
        :return: C{http(s)://127.0.0.1:PORT}, without a trailing slash.
        """
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{LOCALHOST}:{self._port}"

    def hits(self, endpoint: str | None = None) -> int:
        """
        :return: how many requests reached ``endpoint`` (any, if None),
            refused, failed and delayed ones included.
        """
        with self._lock:
            return self._hits.total() if endpoint is None else self._hits[endpoint]

    def requests(self, endpoint: str | None = None) -> list[Recorded]:
        """
        :return: the requests that reached ``endpoint`` (any, if None), oldest
            first.
        """
        with self._lock:
            return [r for r in self._requests if endpoint in (None, r.endpoint)]

    def fail_next(
        self,
        status: int,
        body: Any = None,
        *,
        endpoint: str | None = None,
        count: int = 1,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """
        Answer the next ``count`` requests for ``endpoint`` (any, if None)
        with ``status`` instead, after counting and recording them.

        :param body: a JSON document, or bytes as they are; an empty body if
            None.
        """
        if body is None or isinstance(body, bytes):
            reply = Reply(status, body or b"", tuple(headers))
        else:
            reply = Reply.json(status, body, headers)
        with self._lock:
            self._failures.extend([(endpoint, reply)] * count)

    def slow(self, seconds: float) -> None:
        """
        Wait ``seconds`` before answering each request from now on (0: no
        more). A waiting answer ends early when the service stops.
        """
        with self._lock:
            self._delay = seconds

    def start(self) -> None:
        """
        Listen (again, on the same port after L{stop}); a no-op if
        listening.
        """
        with self._lock:
            if self._server is not None:
                return
            self._wake = threading.Event()
            server = _Server((LOCALHOST, self._port), _handler(self))
            if self.tls is not None:
                # The handshake happens in each request's thread, so a client
                # that stalls in it holds up no one else.
                server.socket = self.tls.server_context().wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.start()
            self._server, self._thread = server, thread

    def stop(self) -> None:
        """
        Become unreachable: stop listening (connections are refused) and
        cut the open connections. The port stays this service's for
        L{start}.
        """
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._wake.set()
            connections = list(self._connections)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=10)

    # -- what the request handler calls

    def _admit(self, connection: socket.socket, admitted: bool) -> None:
        with self._lock:
            if admitted:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(self, request: Recorded) -> tuple[float, threading.Event, Reply | None]:
        with self._lock:
            self._hits[request.endpoint] += 1
            self._requests.append(request)
            failure = None
            for index, (endpoint, reply) in enumerate(self._failures):
                if endpoint in (None, request.endpoint):
                    failure = reply
                    del self._failures[index]
                    break
            return self._delay, self._wake, failure


class _Server(ThreadingHTTPServer):
    """
    A service's server.
    """

    daemon_threads = True

    #: The listen backlog: socketserver's default of 5 drops the SYNs of a
    #: burst of concurrent clients (a daemon fanning 50 requests out to the
    #: storage guard), which then wait out 1 s and 3 s retransmissions.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """
        Say nothing of a client that went away or a connection the service
        cut; report anything else as usual.
        """
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        pieces: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline().strip():
                    pass
                return b"".join(pieces)
            pieces.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    if length > _MAX_BODY:
        raise ValueError("body too large")
    return handler.rfile.read(length) if length else b""


def _handler(service: _HTTPService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """
        Counts and records each request, then answers as the service says.
        """

        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            service._admit(self.connection, True)

        def finish(self) -> None:
            service._admit(self.connection, False)
            super().finish()

        def _any(self) -> None:
            body = _read_body(self)
            endpoint = service.endpoint_of(self.command, self.path.split("?", 1)[0])
            if endpoint is None:
                self._send(Reply(404))
                return
            request = Recorded(
                endpoint,
                self.command,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                body,
            )
            delay, wake, reply = service._record(request)
            if delay > 0 and wake.wait(delay):
                self.close_connection = True
                return
            if reply is None:
                try:
                    reply = service.answer(request)
                except Exception:
                    traceback.print_exc()
                    reply = Reply(500, b"the fake service failed; see its traceback")
            self._send(reply)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            names = set()
            for name, value in reply.headers:
                names.add(name.lower())
                self.send_header(name, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            """
            Log nothing: the counters and records say what a test needs.
            """

    return Handler


def _random_id() -> str:
    return str(uuid.uuid4())


def _now() -> int:
    return int(time.time())


# --- Microsoft Entra -----------------------------------------------------------


@frozen
class IssuedToken:
    """
    An access token a fake service issued.

    :ivar token: the token.
    :ivar expires_at: when it expires, in seconds since the epoch.
    :ivar subject: the C{sub} of the federated token it was issued for
        (generateAccessToken: the service account).
    """

    token: str
    expires_at: int
    subject: str


def entra_error(status: int, error: str, code: int, message: str) -> Reply:
    """
    An error as Entra's token endpoint answers it: C{error},
    C{error_description} (C{AADSTS<code>: message} and trace, correlation
    and time), C{error_codes}, C{timestamp}, C{trace_id}, C{correlation_id},
    C{error_uri}.
    """
    trace, correlation = _random_id(), _random_id()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return Reply.json(
        status,
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {message} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def _entra_refusal(refused: TokenRefused) -> Reply:
    claims = refused.claims
    check = (
        " Please check your federated identity credential Subject, Audience and"
        " Issuer against the presented assertion."
    )
    match refused.reason:
        case "issuer":
            return entra_error(
                401,
                "invalid_client",
                700211,
                "No matching federated identity record found for presented"
                f" assertion issuer '{claims.get('iss')}'." + check,
            )
        case "audience":
            return entra_error(
                401,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented"
                f" assertion audience '{claims.get('aud')}'." + check,
            )
        case "subject":
            return entra_error(
                401,
                "invalid_client",
                700213,
                "No matching federated identity record found for presented"
                f" assertion subject '{claims.get('sub')}'." + check,
            )
        case "no_kid" | "unknown_kid":
            return entra_error(
                401,
                "invalid_client",
                7000272,
                "The certificate used to sign the federated credential could not"
                " be found in the metadata of identity provider"
                f" {claims.get('iss')}. ({refused.detail})",
            )
        case "keys_unavailable":
            return entra_error(
                400,
                "invalid_request",
                50166,
                f"Request to External OIDC endpoint failed. ({refused.detail})",
            )
        case "expired" | "not_yet_valid":
            return entra_error(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range. Current"
                f" time: {datetime.now(UTC).isoformat()}, assertion valid from"
                f" {claims.get('nbf', claims.get('iat'))}, expiry time of"
                f" assertion {claims.get('exp')}.",
            )
        case "signature" | "algorithm":
            return entra_error(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. ({refused.detail})",
            )
        case _:
            return entra_error(
                400,
                "invalid_request",
                50027,
                f"JWT token is invalid or malformed. ({refused.detail})",
            )


@define(kw_only=True)
class FakeEntra(_HTTPService):
    """
    A Microsoft Entra token endpoint for one tenant and one application with
    one federated identity credential; see L{start_entra}.

    :ivar tenant_id: the tenant.
    :ivar client_id: the application (client) id.
    :ivar verifier: how client assertions are verified.
    :ivar token_lifetime: the lifetime of the access tokens it issues.
    :ivar signing_key: the key its access tokens are signed with (nobody
        checks: Azurite does not verify signatures).
    """

    tenant_id: str
    client_id: str
    verifier: TokenVerifier
    token_lifetime: int = 3600
    signing_key: SigningKey = field(factory=lambda: SigningKey.rsa("entra-1"))
    _issued: list[IssuedToken] = field(factory=list)

    @property
    def authority(self) -> str:
        """
        :return: the authority host URL (C{https://login.microsoftonline.com}
            for the real one).
        """
        return self.url

    @property
    def token_url(self) -> str:
        """
        :return: C{{authority}/{tenant_id}/oauth2/v2.0/token}.
        """
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def token_issuer(self) -> str:
        """
        :return: the C{iss} of its access tokens, as Entra's v1 tokens for
            Azure Storage have it.
        """
        return f"https://sts.windows.net/{self.tenant_id}/"

    def issued(self) -> list[IssuedToken]:
        """
        :return: the access tokens issued so far, oldest first.
        """
        with self._lock:
            return list(self._issued)

    def mint_access_token(
        self, *, lifetime: int | None = None, **overrides: Any
    ) -> str:
        """
        Sign an access token shaped like Entra's (v1.0) for Azure Storage,
        without recording it as issued.

        :param lifetime: seconds from now to C{exp}; L{token_lifetime} if not
            given.
        :param overrides: claims to set; C{None} removes a claim.
        :return: the token.
        """
        now = _now()
        object_id = _random_id()
        claims: dict[str, Any] = {
            "aud": AZURE_STORAGE_AUDIENCE,
            "iss": self.token_issuer,
            "iat": now,
            "nbf": now,
            "exp": now + (self.token_lifetime if lifetime is None else lifetime),
            "appid": self.client_id,
            "appidacr": "2",
            "idp": self.token_issuer,
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        claims.update(overrides)
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None},
            self.signing_key.private_key,
            algorithm=self.signing_key.algorithm,
            headers={"kid": self.signing_key.kid, "typ": "JWT"},
        )

    def endpoint_of(self, method: str, path: str) -> str | None:
        """
        :return: C{token} for any tenant's token path.
        """
        return ENTRA_TOKEN if _ENTRA_PATH.match(path) else None

    def answer(self, request: Recorded) -> Reply:
        """
        Check the request and its client assertion; issue a token.
        """
        match = _ENTRA_PATH.match(request.path.split("?", 1)[0])
        assert match is not None
        if request.method != "POST":
            return entra_error(
                400,
                "invalid_request",
                900561,
                "The endpoint only accepts POST, OPTIONS requests.",
            )
        tenant = match.group(1)
        if tenant != self.tenant_id:
            return entra_error(
                400, "invalid_request", 90002, f"Tenant '{tenant}' not found."
            )
        form = request.form()
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name):
                return entra_error(
                    400,
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{name}'.",
                )
        if form["grant_type"] != "client_credentials":
            return entra_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form['grant_type']}'.",
            )
        if form["client_id"] != self.client_id:
            return entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form['client_id']}' was not found"
                f" in the directory '{self.tenant_id}'.",
            )
        scopes = form["scope"].split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form['scope']} is not valid."
                " Client credential flows must have a scope value with /.default"
                " suffixed to the resource identifier (application ID URI).",
            )
        if not form.get("client_assertion") or not form.get("client_assertion_type"):
            return entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter:"
                " 'client_assertion' or 'client_secret'.",
            )
        if form["client_assertion_type"] != CLIENT_ASSERTION_TYPE:
            return entra_error(
                400,
                "invalid_request",
                700021,
                "Client assertion application identifier doesn't match"
                " 'client_assertion_type' parameter.",
            )
        try:
            claims = self.verifier.verify(form["client_assertion"])
        except TokenRefused as refused:
            return _entra_refusal(refused)
        audience = scopes[0].removesuffix("/.default")
        token = self.mint_access_token(aud=audience)
        with self._lock:
            self._issued.append(
                IssuedToken(token, _now() + self.token_lifetime, str(claims["sub"]))
            )
        return Reply.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )


@contextlib.contextmanager
def start_entra(
    *,
    jwks_url: str | None,
    tenant_id: str,
    client_id: str,
    expected_issuer: str,
    expected_subject: str | None = None,
    audience: str = AZURE_EXCHANGE_AUDIENCE,
    token_lifetime: int = 3600,
    tls: TLSMaterial | None = None,
    jwks_ca: Path | None = None,
    jwks_cache_seconds: float = 0.0,
) -> Iterator[FakeEntra]:
    """
    Serve a Microsoft Entra token endpoint on 127.0.0.1 until the block
    ends: C{POST {url}/{tenant_id}/oauth2/v2.0/token} with the client
    credentials grant and a federated client assertion (form fields
    C{grant_type=client_credentials}, C{client_id}, C{scope=RESOURCE/.default},
    C{client_assertion_type}, C{client_assertion}).

    The assertion is verified against the key set at ``jwks_url`` (fetched
    for every request): signed (RS256 or ES256) by the key its C{kid} names,
    C{iss} equal to ``expected_issuer``, C{aud} containing ``audience``,
    C{sub} equal to ``expected_subject`` when given, C{exp}/C{nbf}/C{iat}
    current. Then the answer is C{{"token_type": "Bearer", "expires_in",
    "ext_expires_in", "access_token"}} with an access token for the scope's
    resource (C{aud}) that Azurite's C{--oauth basic} accepts.

    :param jwks_url: the issuer's key set; found through
        C{{expected_issuer}/.well-known/openid-configuration} if None.
    :param token_lifetime: seconds the access tokens live.
    :param tls: serve HTTPS with this material; plain HTTP if None.
    :param jwks_ca: the CA to trust for an C{https} ``jwks_url``.
    :param jwks_cache_seconds: how long a fetched key set is used (0: it
        is fetched for every request).
    :return: a context manager giving the running L{FakeEntra}.
    """
    entra = FakeEntra(
        tls=tls,
        tenant_id=tenant_id,
        client_id=client_id,
        token_lifetime=token_lifetime,
        verifier=TokenVerifier(
            issuer=expected_issuer,
            audiences=(audience,),
            subject=expected_subject,
            jwks_url=jwks_url,
            jwks_ca=jwks_ca,
            cache_seconds=jwks_cache_seconds,
        ),
    )
    entra.start()
    try:
        yield entra
    finally:
        entra.stop()


# --- Google: STS, IAM Credentials, and a guard for fake-gcs-server -----------


def google_error(
    code: int,
    status: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    """
    An error as Google's APIs answer it:
    C{{"error": {"code", "message", "status", "details"}}}.
    """
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = [dict(d) for d in details]
    return Reply.json(code, {"error": error}, headers)


def sts_error(error: str, description: str) -> Reply:
    """
    An error as Google's STS answers it (OAuth 2.0 style, status 400):
    C{{"error", "error_description"}}.
    """
    return Reply.json(400, {"error": error, "error_description": description})


_UNAUTHENTICATED: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access"
    " token, login cookie or other valid authentication credential. See"
    " https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_GOOGLE_CHALLENGE: Final = (
    "WWW-Authenticate",
    'Bearer realm="https://accounts.google.com/"',
)


def _sts_refusal(refused: TokenRefused, verifier: TokenVerifier) -> Reply:
    claims = refused.claims
    match refused.reason:
        case "issuer":
            description = (
                f"The issuer in ID Token {claims.get('iss')} does not match the"
                f" expected ones: {verifier.issuer}."
            )
        case "audience":
            description = (
                f"The audience in ID Token [{claims.get('aud')}] does not match"
                " the expected audience."
            )
        case "subject":
            description = "The given credential is rejected by the attribute condition."
        case "expired":
            description = "The ID Token has expired."
        case "not_yet_valid":
            description = f"The ID Token is not yet valid: {refused.detail}."
        case "too_long":
            description = (
                "The ID Token's expiration time must be less than 48 hours after"
                " its issue time."
            )
        case _:
            description = f"Invalid ID Token: {refused.detail}."
    return sts_error("invalid_grant", description)


@define(kw_only=True)
class FakeGCP(_HTTPService):
    """
    Google's STS and IAM Credentials in one server, and optionally a guard
    in front of a storage emulator; see L{start_gcp}.

    :ivar audience: the workload identity pool provider
        (C{//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X}).
    :ivar verifier: how subject tokens are verified.
    :ivar service_account: the service account that may be impersonated;
        none if None (then the STS token is the storage credential).
    :ivar token_lifetime: the longest lifetime of the tokens it issues.
    """

    audience: str
    verifier: TokenVerifier
    service_account: str | None = None
    token_lifetime: int = 3600
    _sts_issued: list[IssuedToken] = field(factory=list)
    _iam_issued: list[IssuedToken] = field(factory=list)
    _guard: StorageGuard | None = None

    @property
    def sts_url(self) -> str:
        """
        :return: the token exchange endpoint, C{{url}/v1/token}.
        """
        return f"{self.url}/v1/token"

    @property
    def iam_url(self) -> str:
        """
        :return: the IAM Credentials root, C{{url}}: generateAccessToken is
            C{{iam_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken}.
        """
        return self.url

    def impersonation_url(self, email: str | None = None) -> str:
        """
        :return: the generateAccessToken URL of ``email`` (the service
            account, if None).
        """
        email = email if email is not None else self.service_account
        return f"{self.url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    @property
    def storage(self) -> StorageGuard:
        """
        :return: the storage guard.
        :raise RuntimeError: if started without C{storage_upstream}.
        """
        if self._guard is None:
            raise RuntimeError("started without storage_upstream")
        return self._guard

    def sts_issued(self) -> list[IssuedToken]:
        """
        :return: the tokens the STS issued, oldest first.
        """
        with self._lock:
            return list(self._sts_issued)

    def iam_issued(self) -> list[IssuedToken]:
        """
        :return: the tokens generateAccessToken issued, oldest first.
        """
        with self._lock:
            return list(self._iam_issued)

    def _valid(self, tokens: list[IssuedToken], token: str | None) -> bool:
        now = time.time()
        with self._lock:
            return any(t.token == token and now < t.expires_at for t in tokens)

    def accepts_for_storage(self, token: str | None) -> bool:
        """
        :return: whether Google Cloud Storage would take ``token``: one
            generateAccessToken issued and not expired, or, without a
            service account to impersonate, one the STS issued.
        """
        if self._valid(self._iam_issued, token):
            return True
        return self.service_account is None and self._valid(self._sts_issued, token)

    def endpoint_of(self, method: str, path: str) -> str | None:
        """
        :return: C{sts} or C{iam}.
        """
        if path == "/v1/token":
            return GCP_STS
        if _IAM_PATH.match(path):
            return GCP_IAM
        return None

    def answer(self, request: Recorded) -> Reply:
        """
        Dispatch to the endpoint.
        """
        if request.method != "POST":
            return google_error(405, "METHOD_NOT_ALLOWED", "Only POST is supported.")
        if request.endpoint == GCP_STS:
            return self._exchange(request)
        return self._generate(request)

    def _exchange(self, request: Recorded) -> Reply:
        params = {_CAMEL.get(k, k): v for k, v in request.params().items()}
        if params.get("grant_type") != TOKEN_EXCHANGE_GRANT:
            return sts_error(
                "unsupported_grant_type",
                f'Invalid value for "grant_type": {params.get("grant_type")!r}.',
            )
        if params.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return sts_error(
                "invalid_request",
                'Invalid value for "requested_token_type". It must be'
                f' "{ACCESS_TOKEN_TYPE}".',
            )
        if params.get("subject_token_type") not in (JWT_TOKEN_TYPE, ID_TOKEN_TYPE):
            return sts_error(
                "invalid_request",
                'Invalid value for "subject_token_type". It must be'
                f' "{JWT_TOKEN_TYPE}" or "{ID_TOKEN_TYPE}".',
            )
        audience = params.get("audience")
        if not isinstance(audience, str) or not _PROVIDER.match(audience):
            return sts_error(
                "invalid_request",
                'Invalid value for "audience". This value should be the full'
                " resource name of the Identity Provider. See"
                " https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token"
                " for the list of possible formats.",
            )
        if audience != self.audience:
            return sts_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is'
                " invalid. This might either be because the pool or provider is"
                " disabled or deleted or because it doesn't exist.",
            )
        if not params.get("scope"):
            return sts_error(
                "invalid_request",
                'Invalid value for "scope". It is required when exchanging an'
                " external credential.",
            )
        subject_token = params.get("subject_token")
        if not isinstance(subject_token, str) or not subject_token:
            return sts_error("invalid_request", 'Missing "subject_token".')
        try:
            claims = self.verifier.verify(subject_token)
        except TokenRefused as refused:
            return _sts_refusal(refused, self.verifier)
        token = "ya29.d." + secrets.token_urlsafe(48)
        with self._lock:
            self._sts_issued.append(
                IssuedToken(token, _now() + self.token_lifetime, str(claims["sub"]))
            )
        return Reply.json(
            200,
            {
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
            },
        )

    def _generate(self, request: Recorded) -> Reply:
        match = _IAM_PATH.match(request.path.split("?", 1)[0])
        assert match is not None
        if not self._valid(self._sts_issued, request.bearer()):
            return google_error(
                401, "UNAUTHENTICATED", _UNAUTHENTICATED, headers=[_GOOGLE_CHALLENGE]
            )
        project, email = match.group(1), urllib.parse.unquote(match.group(2))
        if project != "-":
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "The project in the resource name must be the wildcard '-'.",
            )
        if email != self.service_account:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.getAccessToken' denied on"
                " resource (or it may not exist).",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "IAM_PERMISSION_DENIED",
                        "domain": "iam.googleapis.com",
                        "metadata": {
                            "permission": "iam.serviceAccounts.getAccessToken"
                        },
                    }
                ],
            )
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return google_error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received."
            )
        scope = document.get("scope")
        if not isinstance(scope, list) or not scope:
            return google_error(400, "INVALID_ARGUMENT", "Scope required.")
        lifetime = GOOGLE_MAX_ACCESS_TOKEN_LIFETIME
        if document.get("lifetime") is not None:
            requested = _DURATION.match(str(document["lifetime"]))
            if requested is None:
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"Invalid value at 'lifetime' (type.googleapis.com/"
                    f"google.protobuf.Duration), Field 'lifetime', Illegal duration"
                    f" format; duration must end with 's': {document['lifetime']}",
                )
            lifetime = int(requested.group(1))
            if not 0 < lifetime <= GOOGLE_MAX_ACCESS_TOKEN_LIFETIME:
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The lifetime requested is not valid. The maximum lifetime"
                    f" allowed is {GOOGLE_MAX_ACCESS_TOKEN_LIFETIME} seconds.",
                )
        expires_at = _now() + min(lifetime, self.token_lifetime)
        token = "ya29.c." + secrets.token_urlsafe(48)
        with self._lock:
            self._iam_issued.append(IssuedToken(token, expires_at, email))
        return Reply.json(
            200,
            {
                "accessToken": token,
                "expireTime": datetime.fromtimestamp(expires_at, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
        )


@define(kw_only=True)
class StorageGuard(_HTTPService):
    """
    A reverse proxy in front of a storage emulator that lets through only
    requests with a bearer token Google Cloud Storage would take (see
    L{FakeGCP.accepts_for_storage}), as JSON-API errors otherwise:
    401 C{{"error": {"code": 401, "message": "Invalid Credentials",
    "errors": [...]}}}. Bodies are buffered (fine for test-sized objects);
    a C{Location} pointing at the upstream is rewritten to point here.

    :ivar upstream: the emulator's URL (C{http://127.0.0.1:PORT}).
    :ivar accepts: says whether a token may pass.
    """

    upstream: str
    accepts: Callable[[str | None], bool]

    @property
    def endpoint(self) -> str:
        """
        :return: the guarded storage API root, for a bucket's C{endpoint}.
        """
        return self.url

    def endpoint_of(self, method: str, path: str) -> str | None:
        """
        :return: C{storage}, for everything.
        """
        return GCP_STORAGE

    def answer(self, request: Recorded) -> Reply:
        """
        Refuse, or forward to the upstream.
        """
        token = request.bearer()
        if token is None:
            return _gcs_error("Login Required.", "required")
        if not self.accepts(token):
            return _gcs_error("Invalid Credentials", "authError")
        return self._forward(request)

    def _forward(self, request: Recorded) -> Reply:
        upstream = urllib.parse.urlsplit(self.upstream)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name not in _HOP_BY_HOP and name not in ("host", "content-length")
        }
        headers["host"] = upstream.netloc
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            headers["content-length"] = str(len(request.body))
        connection = http.client.HTTPConnection(
            upstream.hostname or LOCALHOST, upstream.port, timeout=60
        )
        try:
            connection.request(
                request.method, request.path, body=request.body or None, headers=headers
            )
            response = connection.getresponse()
            body = response.read()
            answer_headers = []
            for name, value in response.getheaders():
                lowered = name.lower()
                if lowered in _HOP_BY_HOP:
                    continue
                if lowered == "content-length" and request.method != "HEAD":
                    continue
                if lowered == "location" and value.startswith(self.upstream):
                    value = self.url + value[len(self.upstream) :]
                answer_headers.append((name, value))
            return Reply(response.status, body, tuple(answer_headers))
        finally:
            connection.close()


def _gcs_error(message: str, reason: str) -> Reply:
    return Reply.json(
        401,
        {
            "error": {
                "code": 401,
                "message": message,
                "errors": [
                    {
                        "message": message,
                        "domain": "global",
                        "reason": reason,
                        "locationType": "header",
                        "location": "Authorization",
                    }
                ],
            }
        },
        [_GOOGLE_CHALLENGE],
    )


@contextlib.contextmanager
def start_gcp(
    *,
    jwks_url: str | None,
    audience: str,
    expected_issuer: str,
    expected_subject: str | None = None,
    service_account: str | None = None,
    token_lifetime: int = 3600,
    allowed_audiences: Sequence[str] | None = None,
    storage_upstream: str | None = None,
    tls: TLSMaterial | None = None,
    jwks_ca: Path | None = None,
    jwks_cache_seconds: float = 0.0,
) -> Iterator[FakeGCP]:
    """
    Serve Google's token services on 127.0.0.1 until the block ends:

    - STS: C{POST {url}/v1/token}, a form (as Google's client libraries
      send it) or JSON (as Google's REST reference shows it; snake_case or
      camelCase) with C{grant_type} (token exchange), C{audience} (must be
      ``audience``), C{scope}, C{requested_token_type} (access token),
      C{subject_token_type} (jwt or id_token), C{subject_token}. The
      subject token is verified like L{start_entra}'s assertion (its C{aud}
      must be one of ``allowed_audiences``; its lifetime at most 48 hours).
      Answer: C{{"access_token", "issued_token_type", "token_type":
      "Bearer", "expires_in"}}.
    - IAM Credentials: C{POST {url}/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken}
      with C{Authorization: Bearer <STS token>} and
      C{{"scope": [...], "lifetime": "3600s"}}; only ``service_account``
      may be impersonated. Answer: C{{"accessToken", "expireTime"}}
      (RFC 3339, whole seconds, C{Z}).

    :param jwks_url: the issuer's key set; found through
        C{{expected_issuer}/.well-known/openid-configuration} if None.
    :param audience: the workload identity pool provider's full resource
        name, C{//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X}.
    :param expected_subject: the C{sub} the provider's attribute condition
        requires; any if None.
    :param service_account: the e-mail of the service account the
        federated identity may impersonate; None: none may be.
    :param token_lifetime: the longest lifetime of the tokens issued
        (generateAccessToken gives the shorter of this and the lifetime
        asked for).
    :param allowed_audiences: the subject token C{aud} values accepted;
        Google's default if None: ``audience`` and the same with an
        C{https:} prefix.
    :param storage_upstream: a storage emulator's URL to guard (see
        L{StorageGuard}); then L{FakeGCP.storage} is the guard.
    :param tls: serve HTTPS with this material (the guard too); plain HTTP
        if None.
    :param jwks_ca: the CA to trust for an C{https} ``jwks_url``.
    :param jwks_cache_seconds: how long a fetched key set is used (0: it
        is fetched for every request).
    :return: a context manager giving the running L{FakeGCP}.
    """
    if allowed_audiences is None:
        allowed_audiences = (audience, "https:" + audience)
    gcp = FakeGCP(
        tls=tls,
        audience=audience,
        service_account=service_account,
        token_lifetime=token_lifetime,
        verifier=TokenVerifier(
            issuer=expected_issuer,
            audiences=tuple(allowed_audiences),
            subject=expected_subject,
            jwks_url=jwks_url,
            jwks_ca=jwks_ca,
            cache_seconds=jwks_cache_seconds,
            max_lifetime=GOOGLE_MAX_SUBJECT_TOKEN_LIFETIME,
        ),
    )
    if storage_upstream is not None:
        gcp._guard = StorageGuard(
            tls=tls,
            upstream=storage_upstream.rstrip("/"),
            accepts=gcp.accepts_for_storage,
        )
    with contextlib.ExitStack() as stack:
        gcp.start()
        stack.callback(gcp.stop)
        if gcp._guard is not None:
            gcp._guard.start()
            stack.callback(gcp._guard.stop)
        yield gcp


# --- Azurite with OAuth ---------------------------------------------------------


@frozen
class AzuriteOAuth:
    """
    A running Azurite blob service over HTTPS that takes bearer tokens
    (C{--oauth basic}) as well as SharedKey.

    :ivar endpoint: the account's blob service URL,
        C{https://127.0.0.1:PORT/ACCOUNT}.
    :ivar account_name: the account.
    :ivar account_key: its SharedKey, for setting up containers.
    :ivar tls: the TLS material it serves with.
    """

    endpoint: str
    account_name: str
    account_key: str = field(repr=False)
    tls: TLSMaterial

    def service(self, credential: Any = None) -> Any:
        """
        :param credential: an C{azure.core.credentials.TokenCredential}; the
            account key if None.
        :return: an C{azure.storage.blob.BlobServiceClient} trusting the CA.
        """
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            account_url=self.endpoint,
            credential=credential
            if credential is not None
            else {"account_name": self.account_name, "account_key": self.account_key},
            api_version=AZURITE_API_VERSION,
            connection_verify=str(self.tls.ca_path),
        )

    def create_container(self, name: str) -> str:
        """
        :return: ``name``, created with the account key.
        """
        self.service().create_container(name)
        return name

    def backend_options(self, container: str, **extra: str) -> dict[str, str]:
        """
        The multistore C{backend_options} of an C{azure} bucket stored here,
        with no credential (the federation gives the bearer token).
        """
        options = {
            "endpoint": self.endpoint,
            "account_name": self.account_name,
            "container_name": container,
        }
        options.update(extra)
        return options

    def status(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """
        C{GET {endpoint}{path}}, with ``token`` as bearer if given, and
        C{x-ms-version}.

        :return: the status and body.
        """
        request = urllib.request.Request(
            self.endpoint + path, headers={"x-ms-version": AZURITE_API_VERSION}
        )
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(
                request, timeout=10, context=self.tls.client_context()
            ) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()


@contextlib.contextmanager
def start_azurite_oauth(
    workdir: Path,
    *,
    tls: TLSMaterial | None = None,
    timeout: float = BACKEND_START_TIMEOUT,
) -> Iterator[AzuriteOAuth]:
    """
    Run Azurite's blob service over HTTPS with C{--oauth basic} until the
    block ends, with one account whose key is made up here.

    What Azurite 3.35's C{basic} OAuth takes (C{BlobTokenAuthenticator}):
    C{Authorization: Bearer <JWT>}, over HTTPS only; the JWT is decoded,
    I{not} verified (any signature, any C{alg}); C{iat}, C{nbf}, C{exp}
    present, C{nbf <= now <= exp} (no skew allowed); C{iss} starting with
    C{https://sts.windows.net/} (or the other clouds' STS hosts); C{aud}
    one string, exactly C{https://storage.azure.com} (optional trailing
    slash), C{e406a681-f3d4-42a8-90b6-c2b029497af1}, or
    C{https://ACCOUNT.blob.core.windows.net} for this account; the scope is
    not checked, nor C{x-ms-version}.

    :param workdir: a directory for its data, log (C{azurite.log}) and, if
        ``tls`` is not given, TLS material.
    :param tls: the TLS material to serve with.
    :param timeout: seconds to wait until it answers.
    :return: a context manager giving the service.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    main = azurite_main()
    node = shutil.which("node")
    if node is None:
        raise ServerStartError("node is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    tls = tls if tls is not None else make_tls(workdir / "tls")
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    key = base64.b64encode(os.urandom(64)).decode("ascii")
    process = ServerProcess(
        "Azurite (OAuth)",
        [
            node,
            str(main),
            "--blobHost",
            LOCALHOST,
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--disableTelemetry",
            "--oauth",
            "basic",
            "--cert",
            str(tls.cert_path),
            "--key",
            str(tls.key_path),
        ],
        workdir / "azurite.log",
        workdir,
        {**os.environ, "AZURITE_ACCOUNTS": f"{AZURITE_ACCOUNT}:{key}"},
    )
    running = RunningEmulator(process, data)
    server = AzuriteOAuth(
        endpoint=f"https://{LOCALHOST}:{port}/{AZURITE_ACCOUNT}",
        account_name=AZURITE_ACCOUNT,
        account_key=key,
        tls=tls,
    )

    process.start()
    try:
        process.wait_until(
            lambda: server.status("?comp=list")[0] == 403,
            what="a 403 for an anonymous container listing over HTTPS",
            timeout=timeout,
        )
        server.service().list_containers().by_page().next()
        yield server
    finally:
        running.stop()
