# mypy: disable-error-code="no-untyped-call"
"""
multistore as an OpenID Connect identity provider, end to end: a daemon
whose S3 bucket has no static key (C{auth_type = "oidc"}) signs a token,
trades it at a real token service (SeaweedFS's STS, see
L{tests.integration.federation}) for temporary credentials, and serves
boto3's requests with them.

SeaweedFS only needs the issuer URL when it starts, so the module picks the
issuer's port first, starts one SeaweedFS trusting C{http://127.0.0.1:PORT}
for the subjects C{s3-proxy} and C{multistore:alice}, and each test starts
its own daemon listening on that port (besides the port the fixture picks),
one after another. SeaweedFS fetches the daemon's discovery document and key
set itself, when the first token arrives, caches the key set for an hour and
fetches it again at once for a token whose C{kid} it does not know; every
test signs with key ids of its own, so no test depends on what an earlier
one left in that cache.

What the client sees of a failed exchange: C{403 AccessDenied} when the
token service refused, C{503 ServiceUnavailable} when it could not be
reached or did not answer within C{[oidc_provider] timeout_secs}; the
details are in the daemon's log only.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final
from uuid import uuid4

import pytest
from attrs import frozen
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SynchronousTestCase

from multistore.config import ACTIONS
from tests.integration.federation import (
    DISCOVERY_PATH,
    JWKS_PATH,
    FederatedSeaweedFS,
    start_jwks_issuer,
    start_seaweedfs_sts,
)
from tests.integration.oidc import SigningKey
from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    error_code,
    free_port,
    http_status,
    port_accepts,
    s3_client,
)

#: The subject of a bucket without C{oidc_subject} (multistore's default).
SUBJECT: Final = "s3-proxy"

#: The template of per-principal subjects, and the one such subject the
#: role trusts.
SUBJECT_TEMPLATE: Final = "multistore:{principal}"
ALICE_SUBJECT: Final = "multistore:alice"

#: Static credentials of the daemon's own clients (not of the store).
ALICE: Final = ("AKFEDALICE0000000001", "alice-secret-0001")
BOB: Final = ("AKFEDBOB000000000001", "bob-secret-00000001")

#: The daemon's buckets.
BUCKET: Final = "fed"
TEMPLATED: Final = "per-user"

#: The most seconds a refused or unreachable exchange may take.
PROMPT: Final = 5.0

#: What the daemon logs when the token service refuses its token.
REFUSED: Final = "STS AssumeRoleWithWebIdentity refused the gateway's token"

MiB: Final = 1024 * 1024


@frozen
class Federation:
    """
    The module's token service and the issuer URL it trusts.

    :ivar port: the port of the issuer URL, where each test's daemon
        listens.
    :ivar sts: SeaweedFS.
    """

    port: int
    sts: FederatedSeaweedFS

    @property
    def issuer(self) -> str:
        """
        :return: C{http://127.0.0.1:PORT}.
        """
        return f"http://{LOCALHOST}:{self.port}"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """
    SeaweedFS trusting tokens of C{http://127.0.0.1:PORT} (a port nothing
    listens on yet) for L{SUBJECT} and L{ALICE_SUBJECT}.
    """
    port = free_port()
    with start_seaweedfs_sts(
        tmp_path_factory.mktemp("seaweedfs-sts"),
        issuer=f"http://{LOCALHOST}:{port}",
        subject=[SUBJECT, ALICE_SUBJECT],
    ) as sts:
        yield Federation(port, sts)


def new_key(name: str, *, ec: bool = False) -> SigningKey:
    """
    :return: a new RSA (or P-256) key with a key id no other test uses.
    """
    kid = f"{name}-{uuid4().hex[:8]}"
    return SigningKey.ec(kid) if ec else SigningKey.rsa(kid)


def pem(key: SigningKey) -> str:
    """
    :return: the private key as PKCS#8 PEM, as C{[[oidc_provider.keys]]}
        takes it.
    """
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def bucket(name: str, options: Mapping[str, str]) -> dict[str, Any]:
    """
    :return: a C{[[buckets]]} entry of an S3 store, under a prefix of its
        own (every test shares SeaweedFS's one bucket).
    """
    return {
        "name": name,
        "backend_type": "s3",
        "backend_prefix": f"{name}-{uuid4().hex[:8]}",
        "backend_options": dict(options),
    }


def daemon_config(
    federation: Federation,
    keys: Sequence[SigningKey],
    buckets: Sequence[Mapping[str, Any]],
    **provider: Any,
) -> dict[str, Any]:
    """
    :param keys: the provider's keys; the first signs.
    :param provider: further C{[oidc_provider]} settings.
    :return: a configuration with ``buckets``, the provider at the module's
        issuer URL, and the clients alice and bob, who may do anything.
    """
    scopes = [{"bucket": "*", "actions": sorted(ACTIONS)}]
    return {
        "buckets": list(buckets),
        "credentials": [
            {
                "access_key_id": key,
                "secret_access_key": secret,
                "principal_name": name,
                "allowed_scopes": scopes,
            }
            for name, (key, secret) in (("alice", ALICE), ("bob", BOB))
        ],
        "oidc_provider": {
            "issuer": federation.issuer,
            "token_lifetime_secs": 300,
            "keys": [{"id": k.kid, "key": pem(k)} for k in keys],
            **provider,
        },
    }


def _wait_for_issuer_port(federation: Federation, daemon: Daemon) -> None:
    # The fixture waits for the port it chose; the issuer's port is a second
    # listener of the same process.
    deadline = time.monotonic() + 10
    while not port_accepts(federation.port):
        if not daemon.running() or time.monotonic() > deadline:
            raise AssertionError(
                f"the daemon does not listen on {federation.issuer}:\n"
                + daemon.log_text()[-3000:]
            )
        time.sleep(0.05)


def start(
    factory: DaemonFactory, federation: Federation, config: Mapping[str, Any]
) -> Daemon:
    """
    Start a daemon that also listens on the issuer's port.
    """
    daemon = factory(
        config, extra_args=["--listen", f"tcp:{federation.port}:interface={LOCALHOST}"]
    )
    _wait_for_issuer_port(federation, daemon)
    return daemon


def restart(daemon: Daemon, federation: Federation, config: Mapping[str, Any]) -> None:
    """
    Restart ``daemon`` with ``config``, on the same ports.
    """
    daemon.restart(config)
    _wait_for_issuer_port(federation, daemon)


def get_json(url: str) -> dict[str, Any]:
    """
    :return: the JSON document at ``url``.
    """
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        document = json.loads(response.read())
    assert isinstance(document, dict)
    return document


def key_fetches(daemon: Daemon) -> int:
    """
    :return: how many times the daemon's key set was asked for (its access
        log, which names no user agent: the test's own requests count too),
        across restarts.
    """
    return sum(
        1 for line in daemon.log_text().splitlines() if f"GET {JWKS_PATH}" in line
    )


def raw_error(client: Any, bucket: str, key: str) -> tuple[int, str]:
    """
    GET an object with a presigned URL, to see the error document as it is.

    :return: the status and the body.
    """
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _Tests(SynchronousTestCase):
    """
    Gives each test the module's token service and a daemon factory.
    """

    @pytest.fixture(autouse=True)
    def _world(
        self,
        federation: Federation,
        multistore_daemon: DaemonFactory,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.federation = federation
        self.sts = federation.sts
        self.factory = multistore_daemon

    def start(self, config: Mapping[str, Any]) -> Daemon:
        return start(self.factory, self.federation, config)

    def assertRefused(self, call: Any, code: str, status: int) -> ClientError:
        """
        Call ``call`` and check that it raised a boto3 C{ClientError} of
        ``code`` and ``status``.
        """
        with self.assertRaises(ClientError) as raised:
            call()
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (status, code),
            raised.exception.response,
        )
        return raised.exception

    def backend_keys(self, prefix: str) -> list[str]:
        """
        :return: the keys in SeaweedFS's bucket under ``prefix``, as its
            admin sees them.
        """
        listing = self.sts.admin.client().list_objects_v2(
            Bucket=self.sts.bucket, Prefix=prefix + "/"
        )
        return sorted(o["Key"] for o in listing.get("Contents", []))


class ReadWriteTests(_Tests):
    """
    A bucket whose store is reached only with credentials bought with the
    daemon's tokens serves reads and writes.
    """

    def test_documents(self) -> None:
        """
        The daemon serves its discovery document and its key set under the
        issuer URL: the issuer, where the keys are, and the public key with
        C{kid}, C{alg} and C{use} (and nothing private).
        """
        key = new_key("docs")
        daemon = self.start(daemon_config(self.federation, [key], []))
        issuer = self.federation.issuer
        discovery = get_json(issuer + DISCOVERY_PATH)
        self.assertEqual(discovery["issuer"], issuer)
        self.assertEqual(discovery["jwks_uri"], issuer + JWKS_PATH)
        self.assertIn("RS256", discovery["id_token_signing_alg_values_supported"])
        keys = get_json(discovery["jwks_uri"])["keys"]
        self.assertEqual(
            [(k["kid"], k["alg"], k["use"], k["kty"]) for k in keys],
            [(key.kid, "RS256", "sig", "RSA")],
        )
        self.assertEqual(keys[0], key.jwk())
        self.assertFalse({"d", "p", "q", "dp", "dq", "qi"} & set(keys[0]))
        # The same documents on the fixture's own port.
        self.assertEqual(get_json(daemon.url + DISCOVERY_PATH), discovery)

    def test_read_write(self) -> None:
        """
        PUT, GET, ListObjectsV2, a multipart upload and a CopyObject through
        a bucket with C{auth_type = "oidc"} and no key in the daemon's
        configuration: the objects are in SeaweedFS's bucket, and SeaweedFS
        fetched the daemon's key set to check the token.
        """
        entry = bucket(BUCKET, self.sts.backend_options())
        config = daemon_config(self.federation, [new_key("rw")], [entry])
        text = json.dumps(config)
        for secret in (self.sts.admin_access_key, self.sts.admin_secret_key):
            self.assertNotIn(secret, text)
        self.assertNotIn("access_key_id", json.dumps(entry))
        daemon = self.start(config)
        client = s3_client(daemon.url, *ALICE)

        client.put_object(Bucket=BUCKET, Key="hello.txt", Body=b"hello, world")
        got = client.get_object(Bucket=BUCKET, Key="hello.txt")
        self.assertEqual(got["Body"].read(), b"hello, world")

        first, second = b"a" * (5 * MiB), b"tail"
        upload = client.create_multipart_upload(Bucket=BUCKET, Key="big.bin")
        parts = []
        for number, body in enumerate((first, second), start=1):
            part = client.upload_part(
                Bucket=BUCKET,
                Key="big.bin",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=body,
            )
            parts.append({"PartNumber": number, "ETag": part["ETag"]})
        client.complete_multipart_upload(
            Bucket=BUCKET,
            Key="big.bin",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        got = client.get_object(Bucket=BUCKET, Key="big.bin")
        self.assertEqual(got["Body"].read(), first + second)

        client.copy_object(
            Bucket=BUCKET,
            Key="copy.txt",
            CopySource={"Bucket": BUCKET, "Key": "hello.txt"},
        )
        got = client.get_object(Bucket=BUCKET, Key="copy.txt")
        self.assertEqual(got["Body"].read(), b"hello, world")

        listing = client.list_objects_v2(Bucket=BUCKET)
        self.assertEqual(
            [o["Key"] for o in listing["Contents"]],
            ["big.bin", "copy.txt", "hello.txt"],
        )
        prefix = entry["backend_prefix"]
        self.assertEqual(
            self.backend_keys(prefix),
            [f"{prefix}/big.bin", f"{prefix}/copy.txt", f"{prefix}/hello.txt"],
        )
        self.assertGreaterEqual(key_fetches(daemon), 1)


class RefusalTests(_Tests):
    """
    When SeaweedFS refuses the daemon's token, the client gets
    C{AccessDenied} and nothing about the token service; the log says why.
    """

    def test_untrusted_subject(self) -> None:
        """
        A bucket whose C{oidc_subject} the role's trust policy does not list:
        GET and PUT are refused with C{403 AccessDenied}, promptly; the error
        document names neither the token service, its role, the subject nor
        STS; the daemon's log has SeaweedFS's answer.
        """
        subject = "intruder-subject"
        entry = bucket(BUCKET, self.sts.backend_options(oidc_subject=subject))
        daemon = self.start(
            daemon_config(self.federation, [new_key("refused")], [entry])
        )
        client = s3_client(daemon.url, *ALICE)
        started = time.monotonic()
        self.assertRefused(
            lambda: client.get_object(Bucket=BUCKET, Key="k"), "AccessDenied", 403
        )
        self.assertLess(time.monotonic() - started, PROMPT)
        # After the back-off (1 s), a write asks again and is refused again.
        time.sleep(1.1)
        self.assertRefused(
            lambda: client.put_object(Bucket=BUCKET, Key="k", Body=b"x"),
            "AccessDenied",
            403,
        )
        status, body = raw_error(client, BUCKET, "k")
        self.assertEqual(status, 403)
        self.assertIn("<Code>AccessDenied</Code>", body)
        for secret in (
            subject,
            self.sts.role_arn,
            self.sts.sts_endpoint,
            self.sts.sts_endpoint.split("//")[1],
            "AssumeRole",
            "WebIdentity",
            "STS",
            "Sender",
            "trust",
            "seaweed",
        ):
            self.assertNotIn(secret.lower(), body.lower())
        log = daemon.log_text()
        self.assertIn(f"{REFUSED}: 403 AccessDenied", log)
        self.assertIn("trust policy", log)
        self.assertEqual(self.backend_keys(entry["backend_prefix"]), [])

    def test_templated_subject(self) -> None:
        """
        C{oidc_subject = "multistore:{principal}"}: alice's token names
        C{multistore:alice}, which the role trusts, so she reads and writes;
        bob's names C{multistore:bob}, which it does not, so he gets
        C{403 AccessDenied}, and alice still works after that.
        """
        entry = bucket(
            TEMPLATED, self.sts.backend_options(oidc_subject=SUBJECT_TEMPLATE)
        )
        daemon = self.start(
            daemon_config(self.federation, [new_key("template")], [entry])
        )
        alice = s3_client(daemon.url, *ALICE)
        bob = s3_client(daemon.url, *BOB)
        alice.put_object(Bucket=TEMPLATED, Key="a.txt", Body=b"alice's")
        self.assertEqual(
            alice.get_object(Bucket=TEMPLATED, Key="a.txt")["Body"].read(), b"alice's"
        )
        self.assertRefused(
            lambda: bob.get_object(Bucket=TEMPLATED, Key="a.txt"), "AccessDenied", 403
        )
        self.assertRefused(
            lambda: bob.put_object(Bucket=TEMPLATED, Key="b.txt", Body=b"bob's"),
            "AccessDenied",
            403,
        )
        self.assertEqual(
            alice.get_object(Bucket=TEMPLATED, Key="a.txt")["Body"].read(), b"alice's"
        )
        prefix = entry["backend_prefix"]
        self.assertEqual(self.backend_keys(prefix), [f"{prefix}/a.txt"])
        log = daemon.log_text()
        self.assertIn(f"{REFUSED}: 403 AccessDenied", log)
        self.assertIn("multistore:bob", log)


class KeyTests(_Tests):
    """
    Which key SeaweedFS checks the token with: the daemon publishes every
    key it has, the signing one first, and SeaweedFS refetches the key set
    on a C{kid} it does not know.
    """

    def test_rotation(self) -> None:
        """
        A key rotation without a restart of SeaweedFS: the daemon signs with
        an RSA key; restarted with a new P-256 key first and the old one
        second, it is trusted at once (SeaweedFS fetched the key set again on
        the unknown C{kid}); restarted with the new key only, it still is.
        """
        pid = self.sts.pid
        old, new = new_key("old"), new_key("new", ec=True)
        entry = bucket(BUCKET, self.sts.backend_options())
        jwks = self.federation.issuer + JWKS_PATH

        daemon = self.start(daemon_config(self.federation, [old], [entry]))
        client = s3_client(daemon.url, *ALICE)
        client.put_object(Bucket=BUCKET, Key="k", Body=b"old key")
        self.assertGreaterEqual(key_fetches(daemon), 1)

        restart(
            daemon, self.federation, daemon_config(self.federation, [new, old], [entry])
        )
        fetched = key_fetches(daemon)
        self.assertEqual(
            client.get_object(Bucket=BUCKET, Key="k")["Body"].read(), b"old key"
        )
        client.put_object(Bucket=BUCKET, Key="k", Body=b"new key")
        # One exchange (the credentials are cached), one refetch of the keys.
        self.assertEqual(key_fetches(daemon), fetched + 1)
        self.assertEqual([k["kid"] for k in get_json(jwks)["keys"]], [new.kid, old.kid])

        restart(daemon, self.federation, daemon_config(self.federation, [new], [entry]))
        fetched = key_fetches(daemon)
        self.assertEqual(
            client.get_object(Bucket=BUCKET, Key="k")["Body"].read(), b"new key"
        )
        # SeaweedFS had the new key already.
        self.assertEqual(key_fetches(daemon), fetched)
        self.assertEqual([k["kid"] for k in get_json(jwks)["keys"]], [new.kid])

        self.assertEqual(self.sts.pid, pid)
        self.assertTrue(self.sts.process.running())

    def test_abrupt_rotation(self) -> None:
        """
        Against discovery, SeaweedFS always finds the key: the daemon
        restarted with only a new key (the old one withdrawn at once, no
        overlap) is trusted on its first exchange, because it publishes the
        key it signs with and SeaweedFS refetches on the unknown C{kid}.
        """
        entry = bucket(BUCKET, self.sts.backend_options())
        daemon = self.start(daemon_config(self.federation, [new_key("first")], [entry]))
        client = s3_client(daemon.url, *ALICE)
        client.put_object(Bucket=BUCKET, Key="k", Body=b"first")
        restart(
            daemon,
            self.federation,
            daemon_config(self.federation, [new_key("second")], [entry]),
        )
        fetched = key_fetches(daemon)
        self.assertEqual(
            client.get_object(Bucket=BUCKET, Key="k")["Body"].read(), b"first"
        )
        self.assertEqual(key_fetches(daemon), fetched + 1)

    def test_key_not_published(self) -> None:
        """
        A key SeaweedFS cannot find: a second SeaweedFS trusts the daemon's
        issuer but takes its keys from a C{jwksUri} elsewhere (a stale copy
        of the key set, with the daemon's retired key only). The daemon,
        signing with its new key, is refused with C{403 AccessDenied} even
        though SeaweedFS refetched that key set for the unknown C{kid}; once
        the new key is published there, the next exchange (after the
        daemon's 1 s back-off) succeeds.
        """
        retired, current = new_key("retired"), new_key("current")
        with (
            start_jwks_issuer(signing_key=retired) as stale,
            start_seaweedfs_sts(
                self.tmp_path_factory.mktemp("seaweedfs-elsewhere"),
                issuer=self.federation.issuer,
                subject=SUBJECT,
                jwks_uri=stale.url + JWKS_PATH,
            ) as elsewhere,
        ):
            entry = bucket(BUCKET, elsewhere.backend_options())
            daemon = self.start(daemon_config(self.federation, [current], [entry]))
            client = s3_client(daemon.url, *ALICE)
            started = time.monotonic()
            self.assertRefused(
                lambda: client.put_object(Bucket=BUCKET, Key="k", Body=b"x"),
                "AccessDenied",
                403,
            )
            self.assertLess(time.monotonic() - started, PROMPT)
            self.assertGreaterEqual(stale.hits(JWKS_PATH), 1)
            self.assertEqual(key_fetches(daemon), 0)
            log = daemon.log_text()
            self.assertIn(f"{REFUSED}: 403 AccessDenied", log)
            self.assertIn("failed to validate web identity token", log)

            stale.publish(current)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.put_object(Bucket=BUCKET, Key="k", Body=b"x")
                    break
                except ClientError as error:
                    if (
                        error_code(error) != "AccessDenied"
                        or time.monotonic() > deadline
                    ):
                        raise
                    time.sleep(0.25)
            self.assertEqual(
                client.get_object(Bucket=BUCKET, Key="k")["Body"].read(), b"x"
            )


class UnreachableTests(_Tests):
    """
    A token service that cannot be reached, or does not answer: the client
    gets C{503 ServiceUnavailable}.
    """

    def test_closed_port(self) -> None:
        """
        C{sts_endpoint} names a port nothing listens on: the connection is
        refused at once, and so is the client's request, with C{503
        ServiceUnavailable}; the log names the endpoint.
        """
        closed = f"http://{LOCALHOST}:{free_port()}"
        options = self.sts.backend_options(sts_endpoint=closed)
        daemon = self.start(
            daemon_config(
                self.federation, [new_key("closed")], [bucket(BUCKET, options)]
            )
        )
        client = s3_client(daemon.url, *ALICE)
        started = time.monotonic()
        self.assertRefused(
            lambda: client.get_object(Bucket=BUCKET, Key="k"), "ServiceUnavailable", 503
        )
        self.assertLess(time.monotonic() - started, PROMPT)
        status, body = raw_error(client, BUCKET, "k")
        self.assertEqual(status, 503)
        self.assertNotIn(closed.split("//")[1], body)
        self.assertIn(f"STS AssumeRoleWithWebIdentity at {closed}", daemon.log_text())

    def test_silent(self) -> None:
        """
        C{sts_endpoint} accepts connections and never answers: the exchange
        gives up after C{[oidc_provider] timeout_secs} (2 s here; 10 by
        default) with C{503 ServiceUnavailable}.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
            # The kernel completes the handshakes; nothing ever reads.
            silent.bind((LOCALHOST, 0))
            silent.listen(8)
            endpoint = f"http://{LOCALHOST}:{silent.getsockname()[1]}"
            options = self.sts.backend_options(sts_endpoint=endpoint)
            daemon = self.start(
                daemon_config(
                    self.federation,
                    [new_key("silent")],
                    [bucket(BUCKET, options)],
                    timeout_secs=2,
                )
            )
            client = s3_client(daemon.url, *ALICE)
            started = time.monotonic()
            self.assertRefused(
                lambda: client.get_object(Bucket=BUCKET, Key="k"),
                "ServiceUnavailable",
                503,
            )
            elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 2 + PROMPT)
        self.assertIn(f"STS AssumeRoleWithWebIdentity at {endpoint}", daemon.log_text())
