"""
A real OpenID Connect issuer for the STS integration tests.

L{start_issuer} serves, over HTTPS on 127.0.0.1 with a throwaway CA (see
L{tests.integration.servers.make_certificate}), what multistore fetches from
an issuer: the discovery document at C{/.well-known/openid-configuration}
and the key set it names at C{/jwks}, with a C{Cache-Control: max-age}. It
runs in a thread of the test process, so a test can count the requests it
got (L{OIDCIssuer.hits}), publish a new key and sign with it (key rotation,
L{OIDCIssuer.rotate}), and mint tokens (L{OIDCIssuer.mint}).

A daemon trusts the issuer when started with C{SSL_CERT_FILE} naming
L{OIDCIssuer.ca_bundle}: multistore's HTTP client verifies certificates
with the platform's trust store, which OpenSSL reads from that variable.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import jwt
from attrs import define, field, frozen
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.integration.servers import LOCALHOST, make_certificate

#: The key set's lifetime the issuer announces, in seconds.
DEFAULT_MAX_AGE: Final = 300

#: Where the system's CA certificates are, when there is such a file.
SYSTEM_CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")

#: The paths the issuer serves.
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/jwks"


@frozen
class SigningKey:
    """
    A key the issuer signs with.

    :ivar kid: its key id.
    :ivar algorithm: C{RS256} or C{ES256}.
    :ivar private_key: the private key.
    """

    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        """
        :return: a new 2048-bit RSA key (C{RS256}).
        """
        return cls(kid, "RS256", rsa.generate_private_key(65537, 2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        """
        :return: a new P-256 key (C{ES256}).
        """
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """
        :return: the public JWK, as an issuer publishes it.
        """
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            document = RSAAlgorithm.to_jwk(public)
        else:
            document = ECAlgorithm.to_jwk(public)
        jwk = json.loads(document) if isinstance(document, str) else dict(document)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return dict(jwk)


@define
class OIDCIssuer:
    """
    A running issuer; see the module docstring.

    :ivar url: the issuer URL (C{iss}), C{https://127.0.0.1:PORT}.
    :ivar ca_path: the CA certificate its TLS certificate chains to.
    :ivar ca_bundle: the system's CA certificates and L{ca_path}, for
        C{SSL_CERT_FILE}.
    :ivar signing_key: the key L{mint} signs with by default.
    :ivar published: the keys in its key set.
    :ivar max_age: the C{Cache-Control: max-age} of its key set.
    """

    url: str
    ca_path: Path
    ca_bundle: Path
    signing_key: SigningKey
    published: list[SigningKey]
    max_age: int = DEFAULT_MAX_AGE
    _hits: Counter[str] = field(factory=Counter)
    _lock: threading.Lock = field(factory=threading.Lock)

    def hits(self, path: str = JWKS_PATH) -> int:
        """
        :return: how many requests for ``path`` arrived so far.
        """
        with self._lock:
            return self._hits[path]

    def count(self, path: str) -> None:
        """
        Count a request for ``path`` (called by the request handler).
        """
        with self._lock:
            self._hits[path] += 1

    def discovery(self) -> dict[str, Any]:
        """
        :return: the discovery document.
        """
        return {
            "issuer": self.url,
            "jwks_uri": self.url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def jwks(self) -> dict[str, Any]:
        """
        :return: the key set: every published key.
        """
        with self._lock:
            return {"keys": [key.jwk() for key in self.published]}

    def publish(self, key: SigningKey) -> None:
        """
        Add ``key`` to the key set.
        """
        with self._lock:
            self.published.append(key)

    def rotate(self, key: SigningKey) -> None:
        """
        Publish ``key`` (the old keys stay published) and sign with it from
        now on.
        """
        self.publish(key)
        self.signing_key = key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """
        The claims of a token this issuer issues now, valid for five
        minutes: C{iss}, C{iat}, C{nbf}, C{exp} and ``overrides`` (an
        override of C{None} removes the claim).
        """
        now = int(time.time())
        result: dict[str, Any] = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        result.update(overrides)
        return {k: v for k, v in result.items() if v is not None}

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        key: SigningKey | None = None,
        alg: str | None = None,
        kid: str | None = None,
    ) -> str:
        """
        Sign ``claims`` as they are.

        :param key: the key to sign with; L{signing_key} if not given (a key
            the issuer does not publish makes a forged token).
        :param alg: the algorithm; the key's if not given.
        :param kid: the key id in the header; the key's if not given.
        :return: the compact JWS.
        """
        key = key if key is not None else self.signing_key
        return jwt.encode(
            dict(claims),
            key.private_key,
            algorithm=alg or key.algorithm,
            headers={"kid": kid if kid is not None else key.kid},
        )


def _handler(issuer: OIDCIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """
        Serves the discovery document and the key set, counting requests.
        """

        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            """
            Count the request and answer it: the document, or 404.
            """
            path = self.path.split("?", 1)[0]
            issuer.count(path)
            headers = {"Content-Type": "application/json"}
            if path == DISCOVERY_PATH:
                body = json.dumps(issuer.discovery()).encode()
            elif path == JWKS_PATH:
                body = json.dumps(issuer.jwks()).encode()
                headers["Cache-Control"] = f"public, max-age={issuer.max_age}"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """
            Log nothing: the counters say what a test needs.
            """

    return Handler


class _Server(ThreadingHTTPServer):
    """
    The issuer's HTTPS server.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """
        Say nothing of a client that gave up on the TLS handshake (a daemon
        that does not trust the CA, as a test means it to); report anything
        else as usual.
        """
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def start_issuer(
    directory: Path,
    *,
    signing_key: SigningKey | None = None,
    max_age: int = DEFAULT_MAX_AGE,
) -> Iterator[OIDCIssuer]:
    """
    Serve an issuer over HTTPS on 127.0.0.1 until the block ends.

    :param directory: where its TLS material goes.
    :param signing_key: its first key; a new RSA key if not given.
    :param max_age: its key set's C{Cache-Control: max-age}.
    :return: a context manager giving the running issuer.
    """
    ca_path, cert_path, key_path = make_certificate(directory)
    bundle = directory / "ca-bundle.pem"
    system = SYSTEM_CA_BUNDLE.read_bytes() if SYSTEM_CA_BUNDLE.exists() else b""
    bundle.write_bytes(system + b"\n" + ca_path.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    key = signing_key if signing_key is not None else SigningKey.rsa("key-1")
    issuer = OIDCIssuer(
        url="",
        ca_path=ca_path,
        ca_bundle=bundle,
        signing_key=key,
        published=[key],
        max_age=max_age,
    )
    server = _Server((LOCALHOST, 0), _handler(issuer))
    # The handshake happens in each request's thread, so a client that
    # stalls in it holds up no one else.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    issuer.url = f"https://{LOCALHOST}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
