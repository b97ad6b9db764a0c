# mypy: disable-error-code="no-untyped-call"
"""
Authentication and authorization through the daemon, with real clients and
raw signed requests, over buckets on SeaweedFS.

Static credentials come from the configuration's C{[[credentials]]}; every
refusal must be the error AWS gives (code and status) in an S3 error
document whose RequestId is the C{x-amz-request-id} header; and a caller who
may not use a bucket must not learn whether it exists.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from unittest import mock
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest
from attrs import frozen
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    BIN_DIR,
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    http_status,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_clients import client_environment
from tests.integration.test_read_path import (
    REGION,
    RawResponse,
    check_client_error,
    check_error,
    object_path,
    parse_error,
    send_raw,
    signed_headers,
    signed_request,
)


@frozen
class Key:
    """
    A static credential of the test configuration.

    :ivar access_key: the access key id.
    :ivar secret: its secret.
    """

    access_key: str
    secret: str

    @property
    def pair(self) -> tuple[str, str]:
        """
        ``(access_key, secret)``.
        """
        return (self.access_key, self.secret)

    def wrong(self) -> tuple[str, str]:
        """
        :return: this access key with a wrong secret.
        """
        return (self.access_key, self.secret + "-wrong")


#: Every bucket (C{bucket = "*"}), read actions.
FULL: Final = Key("AKAUTHFULL0000000001", "full-secret-0001")
#: Bucket C{data}, prefix C{data} (no slash: the boundary rule applies).
SCOPED: Final = Key("AKAUTHSCOPED00000001", "scoped-secret-0001")
#: Bucket C{data}, C{get_object} only.
GET_ONLY: Final = Key("AKAUTHGETONLY0000001", "get-only-secret-0001")
#: Bucket C{other} only.
OTHER: Final = Key("AKAUTHOTHER000000001", "other-secret-0001")
#: Buckets matching C{da*}.
GLOB: Final = Key("AKAUTHGLOB0000000001", "glob-secret-0001")
#: Like FULL, but C{enabled = false}.
DISABLED: Final = Key("AKAUTHDISABLED000001", "disabled-secret-0001")
#: Like FULL, but C{expires_at} is past.
EXPIRED: Final = Key("AKAUTHEXPIRED0000001", "expired-secret-0001")
#: Like FULL, with C{expires_at} far ahead.
LASTING: Final = Key("AKAUTHLASTING0000001", "lasting-secret-0001")

_READ: Final = ["get_object", "head_object", "list_bucket"]

#: What is seeded under each bucket's backend prefix.
DATA_KEYS: Final = (
    "data",
    "data/x.txt",
    "data/sub/y.txt",
    "data-private/x.txt",
    "reports/r.txt",
    "top.txt",
)


def body_of(bucket: str, key: str) -> bytes:
    """
    :return: the seeded body of ``key`` in ``bucket``.
    """
    return f"{bucket}:{key}".encode()


@frozen
class AuthWorld:
    """
    The module's daemon, and the real bucket behind its three buckets.

    :ivar daemon: the daemon.
    :ivar server: SeaweedFS.
    :ivar backend_bucket: the real bucket.
    :ivar prefixes: each virtual bucket's backend prefix.
    """

    daemon: Daemon
    server: S3Server
    backend_bucket: str
    prefixes: dict[str, str]

    def client(self, key: tuple[str, str], **config: Any) -> Any:
        """
        :return: a path-style boto3 client of the daemon signing with ``key``.
        """
        return s3_client(self.daemon.url, *key, **config)

    def anonymous(self) -> Any:
        """
        :return: an unsigned boto3 client of the daemon.
        """
        return s3_client(self.daemon.url, unsigned=True)

    def backend_has(self, bucket: str, key: str) -> bool:
        """
        :return: whether the real bucket holds virtual ``key`` of ``bucket``.
        """
        client = self.server.client()
        try:
            client.head_object(
                Bucket=self.backend_bucket, Key=f"{self.prefixes[bucket]}/{key}"
            )
        except ClientError as e:
            if http_status(e) == 404:
                return False
            raise
        return True


def _credential(key: Key, scopes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "access_key_id": key.access_key,
        "secret_access_key": key.secret,
        "principal_name": key.access_key.lower(),
        "allowed_scopes": scopes,
        **extra,
    }


@pytest.fixture(scope="module")
def auth_world(
    module_multistore_daemon: DaemonFactory, seaweedfs: S3Server
) -> AuthWorld:
    """
    Buckets C{data}, C{other} (private) and C{public} (anonymous) on one
    SeaweedFS bucket, the credentials above, and a daemon.
    """
    backend_bucket = seaweedfs.create_bucket(unique_bucket_name("auth"))
    root = f"za{uuid4().hex[:10]}"
    prefixes = {name: f"{root}/{name}" for name in ("data", "other", "public")}
    backend = seaweedfs.client()
    for bucket, prefix in prefixes.items():
        for key in DATA_KEYS:
            backend.put_object(
                Bucket=backend_bucket, Key=f"{prefix}/{key}", Body=body_of(bucket, key)
            )
    options = seaweedfs.backend_options(backend_bucket)
    every = [{"bucket": "*", "prefixes": [], "actions": _READ}]
    config = {
        "buckets": [
            {
                "name": name,
                "backend_type": "s3",
                "backend_prefix": prefix,
                "anonymous_access": name == "public",
                "backend_options": options,
            }
            for name, prefix in prefixes.items()
        ],
        "credentials": [
            _credential(FULL, every),
            _credential(
                SCOPED,
                [{"bucket": "data", "prefixes": ["data"], "actions": _READ}],
            ),
            _credential(GET_ONLY, [{"bucket": "data", "actions": ["get_object"]}]),
            _credential(OTHER, [{"bucket": "other", "actions": _READ}]),
            _credential(GLOB, [{"bucket": "da*", "actions": _READ}]),
            _credential(DISABLED, every, enabled=False),
            _credential(EXPIRED, every, expires_at="2020-01-01T00:00:00Z"),
            _credential(LASTING, every, expires_at="2099-01-01T00:00:00Z"),
        ],
    }
    daemon = module_multistore_daemon(config)
    return AuthWorld(daemon, seaweedfs, backend_bucket, prefixes)


class _AuthMixin:
    """
    Gives each test C{self.world} and C{self.directory}.
    """

    @pytest.fixture(autouse=True)
    def _world(self, auth_world: AuthWorld, tmp_path: Path) -> None:
        self.world = auth_world
        self.directory = tmp_path

    def get(
        self,
        key: tuple[str, str],
        target: str,
        *,
        method: str = "GET",
        headers: Sequence[tuple[str, str]] = (),
        when: datetime | None = None,
    ) -> RawResponse:
        """
        Send a request signed with ``key``, the target as given.
        """
        return signed_request(
            self.world.daemon, method, target, *key, headers=headers, when=when
        )


class AuthenticationTests(_AuthMixin, SynchronousTestCase):
    """
    Who is calling: SigV4 header verification and static credentials.
    """

    def test_signed_request_succeeds(self) -> None:
        """
        A correctly signed request is verified over exactly what was sent:
        the raw path, the raw query in any order and encoding, header values
        as sent, and the port in C{Host}.
        """
        response = self.get(FULL.pair, "/data/data/x.txt")
        self.assertEqual(
            (response.status, response.body), (200, body_of("data", "data/x.txt"))
        )
        response = self.get(
            FULL.pair,
            "/data?prefix=data%2Fsub%2F&max-keys=5&list-type=2&encoding-type=url",
        )
        self.assertEqual(response.status, 200, response.body)
        self.assertIn(b"<Key>data/sub/y.txt</Key>", response.body)
        response = self.get(
            FULL.pair,
            "/data/data/x.txt",
            headers=[("x-amz-meta-note", "  two   spaces  "), ("Range", "bytes=0-3")],
        )
        self.assertEqual((response.status, response.body), (206, b"data"))

    def test_request_changed_after_signing(self) -> None:
        """
        A request changed after it was signed (its path, its query, its
        C{Host} with or without the port, a signed header) is
        C{SignatureDoesNotMatch}.
        """
        port = self.world.daemon.port
        base = f"http://{LOCALHOST}:{port}"
        sent = signed_headers("GET", f"{base}/data/data/x.txt", *FULL.pair)
        check_error(
            self,
            send_raw(port, "GET", "/data/data/sub/y.txt", sent),
            403,
            "SignatureDoesNotMatch",
        )
        sent = signed_headers("GET", f"{base}/data?list-type=2&prefix=data", *FULL.pair)
        check_error(
            self,
            send_raw(port, "GET", "/data?list-type=2&prefix=top", sent),
            403,
            "SignatureDoesNotMatch",
        )
        for host in (LOCALHOST, f"localhost:{port}", f"{LOCALHOST}:{port + 1}"):
            sent = signed_headers("GET", f"{base}/data/data/x.txt", *FULL.pair)
            moved = [(n, host if n == "Host" else v) for n, v in sent]
            check_error(
                self,
                send_raw(port, "GET", "/data/data/x.txt", moved),
                403,
                "SignatureDoesNotMatch",
            )
        sent = signed_headers(
            "GET",
            f"{base}/data/data/x.txt",
            *FULL.pair,
            headers=[("Range", "bytes=0-1")],
        )
        changed = [(n, "bytes=0-2" if n == "Range" else v) for n, v in sent]
        check_error(
            self,
            send_raw(port, "GET", "/data/data/x.txt", changed),
            403,
            "SignatureDoesNotMatch",
        )

    def test_wrong_secret(self) -> None:
        """
        A wrong secret is 403 C{SignatureDoesNotMatch}, in an error document.
        """
        response = self.get(FULL.wrong(), "/data/data/x.txt")
        check_error(self, response, 403, "SignatureDoesNotMatch")
        with self.assertRaises(ClientError) as raised:
            self.world.client(FULL.wrong()).list_objects_v2(Bucket="data")
        check_client_error(self, raised.exception, 403, "SignatureDoesNotMatch")

    def test_unknown_and_disabled_keys(self) -> None:
        """
        An access key that does not exist, and one with C{enabled = false},
        are both 403 C{InvalidAccessKeyId}.
        """
        for key in (("AKNOSUCHKEY000000001", "whatever"), DISABLED.pair):
            response = self.get(key, "/data/data/x.txt")
            document = check_error(self, response, 403, "InvalidAccessKeyId")
            self.assertEqual(document["Resource"], "/data/data/x.txt")
            with self.assertRaises(ClientError) as raised:
                self.world.client(key).get_object(Bucket="data", Key="data/x.txt")
            check_client_error(self, raised.exception, 403, "InvalidAccessKeyId")

    def test_expired_credential(self) -> None:
        """
        A credential past its C{expires_at} is C{ExpiredToken}; one that
        expires in the future works.
        """
        response = self.get(EXPIRED.pair, "/data/data/x.txt")
        check_error(self, response, 400, "ExpiredToken")
        with self.assertRaises(ClientError) as raised:
            self.world.client(EXPIRED.pair).list_buckets()
        check_client_error(self, raised.exception, 400, "ExpiredToken")
        response = self.get(LASTING.pair, "/data/data/x.txt")
        self.assertEqual(response.status, 200)

    def test_clock_skew(self) -> None:
        """
        An C{x-amz-date} 20 minutes off, either way, is 403
        C{RequestTimeTooSkewed}; 14 minutes off is accepted.
        """
        now = datetime.now(UTC)
        for offset in (timedelta(minutes=-20), timedelta(minutes=20)):
            response = self.get(FULL.pair, "/data/data/x.txt", when=now + offset)
            document = check_error(self, response, 403, "RequestTimeTooSkewed")
            self.assertIn("ServerTime", document)
        for offset in (timedelta(minutes=-14), timedelta(minutes=14)):
            response = self.get(FULL.pair, "/data/data/x.txt", when=now + offset)
            self.assertEqual(response.status, 200, offset)
        # boto3 signing with a clock 20 minutes slow.
        client = self.world.client(FULL.pair)
        slow = (now - timedelta(minutes=20)).replace(tzinfo=None)
        with (
            mock.patch("botocore.auth.get_current_datetime", return_value=slow),
            self.assertRaises(ClientError) as raised,
        ):
            client.get_object(Bucket="data", Key="data/x.txt")
        check_client_error(self, raised.exception, 403, "RequestTimeTooSkewed")

    def test_malformed_authorization(self) -> None:
        """
        A malformed C{AWS4-HMAC-SHA256} C{Authorization} header is 400
        C{AuthorizationHeaderMalformed}.
        """
        port = self.world.daemon.port
        good = dict(
            signed_headers(
                "GET", f"http://{LOCALHOST}:{port}/data/data/x.txt", *FULL.pair
            )
        )
        date = good["X-Amz-Date"][:8]
        credential = f"{FULL.access_key}/{date}/{REGION}/s3/aws4_request"
        signature = "0" * 64
        for value in (
            f"AWS4-HMAC-SHA256 Credential={credential}",
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host",
            f"AWS4-HMAC-SHA256 Credential={FULL.access_key}/{date}/{REGION}/s3,"
            f" SignedHeaders=host, Signature={signature}",
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host,"
            " Signature=not-hex",
            f"AWS4-HMAC-SHA256 Credential={FULL.access_key}/{date}/{REGION}/ec2/"
            f"aws4_request, SignedHeaders=host, Signature={signature}",
        ):
            headers = [
                (n, value if n == "Authorization" else v) for n, v in good.items()
            ]
            response = send_raw(port, "GET", "/data/data/x.txt", headers)
            check_error(self, response, 400, "AuthorizationHeaderMalformed")

    def test_error_documents(self) -> None:
        """
        Every refusal here is an S3 error document with Code, Message,
        Resource and RequestId, the RequestId also in C{x-amz-request-id},
        and a fresh one each time.
        """
        ids = set()
        for _ in range(3):
            response = self.get(FULL.wrong(), "/data/data/x.txt")
            document = check_error(self, response, 403, "SignatureDoesNotMatch")
            self.assertEqual(document["Resource"], "/data/data/x.txt")
            ids.add(document["RequestId"])
        self.assertEqual(len(ids), 3)


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ClientSignatureTests(_AuthMixin, SynchronousTestCase):
    """
    Each real client signs requests the daemon accepts, and a wrong secret
    is C{SignatureDoesNotMatch} (403) for each.
    """

    def _aws(
        self, key: tuple[str, str], *args: str
    ) -> subprocess.CompletedProcess[bytes]:
        env = client_environment(
            self.directory, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1]
        )
        argv = [
            str(BIN_DIR / "aws"),
            "--endpoint-url",
            self.world.daemon.url,
            "--region",
            REGION,
            *args,
        ]
        return subprocess.run(
            argv,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def test_boto3(self) -> None:
        """
        boto3 (SigV4, path style).
        """
        client = self.world.client(FULL.pair)
        got = client.get_object(Bucket="data", Key="data/x.txt")["Body"].read()
        self.assertEqual(got, body_of("data", "data/x.txt"))
        with self.assertRaises(ClientError) as raised:
            self.world.client(FULL.wrong()).get_object(Bucket="data", Key="data/x.txt")
        check_client_error(self, raised.exception, 403, "SignatureDoesNotMatch")

    def test_aws_cli(self) -> None:
        """
        aws-cli (C{aws s3api}).
        """
        done = self._aws(FULL.pair, "s3api", "list-objects-v2", "--bucket", "data")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(b'"data/x.txt"', done.stdout)
        target = self.directory / "out"
        done = self._aws(
            FULL.pair,
            "s3api",
            "get-object",
            "--bucket",
            "data",
            "--key",
            "data/x.txt",
            str(target),
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(target.read_bytes(), body_of("data", "data/x.txt"))
        done = self._aws(FULL.wrong(), "s3api", "list-objects-v2", "--bucket", "data")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(b"SignatureDoesNotMatch", done.stderr)

    def test_s3fs(self) -> None:
        """
        s3fs.
        """
        import s3fs  # type: ignore[import-untyped]

        def filesystem(key: tuple[str, str]) -> Any:
            return s3fs.S3FileSystem(
                anon=False,
                key=key[0],
                secret=key[1],
                client_kwargs={
                    "endpoint_url": self.world.daemon.url,
                    "region_name": REGION,
                },
                skip_instance_cache=True,
                use_listings_cache=False,
            )

        good = filesystem(FULL.pair)
        self.assertEqual(
            good.cat_file("data/data/x.txt"), body_of("data", "data/x.txt")
        )
        with self.assertRaises(PermissionError) as raised:
            filesystem(FULL.wrong()).ls("data/data/")
        # s3fs raises the S3 error it got as the cause.
        cause = raised.exception.__cause__
        assert isinstance(cause, ClientError), repr(cause)
        self.assertEqual(
            (http_status(cause), error_code(cause)), (403, "SignatureDoesNotMatch")
        )

    def test_obstore(self) -> None:
        """
        obstore.
        """
        import obstore
        from obstore.store import S3Store

        def store(key: tuple[str, str]) -> Any:
            return S3Store(
                "data",
                config={
                    "endpoint": self.world.daemon.url,
                    "allow_http": True,
                    "access_key_id": key[0],
                    "secret_access_key": key[1],
                    "region": REGION,
                },
                client_options={"timeout": "30s"},
                retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
            )

        got = bytes(obstore.get(store(FULL.pair), "data/x.txt").bytes())
        self.assertEqual(got, body_of("data", "data/x.txt"))
        with self.assertRaises(Exception) as raised:
            obstore.get(store(FULL.wrong()), "data/x.txt").bytes()
        self.assertIn("SignatureDoesNotMatch", _message(raised.exception))
        self.assertIn("403", _message(raised.exception))

    def test_rclone(self) -> None:
        """
        rclone.
        """

        def rclone(
            key: tuple[str, str], *args: str
        ) -> subprocess.CompletedProcess[bytes]:
            config = self.directory / "rclone.conf"
            config.write_text(
                "[gateway]\ntype = s3\nprovider = Other\n"
                f"access_key_id = {key[0]}\nsecret_access_key = {key[1]}\n"
                f"endpoint = {self.world.daemon.url}\nregion = {REGION}\n"
                "force_path_style = true\n"
            )
            return subprocess.run(
                [
                    str(BIN_DIR / "rclone"),
                    "--config",
                    str(config),
                    "--low-level-retries",
                    "1",
                    "--retries",
                    "1",
                    *args,
                ],
                env=client_environment(self.directory),
                capture_output=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
            )

        done = rclone(FULL.pair, "cat", "gateway:data/data/x.txt")
        self.assertEqual(
            (done.returncode, done.stdout), (0, body_of("data", "data/x.txt"))
        )
        done = rclone(FULL.wrong(), "lsf", "gateway:data/data")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(b"StatusCode: 403", done.stderr)
        self.assertIn(b"SignatureDoesNotMatch", done.stderr)

    def test_minio(self) -> None:
        """
        minio-py.
        """
        from minio import Minio
        from minio.error import S3Error as MinioError

        def client(key: tuple[str, str]) -> Any:
            return Minio(
                self.world.daemon.url.removeprefix("http://"),
                access_key=key[0],
                secret_key=key[1],
                secure=False,
                region=REGION,
            )

        response = client(FULL.pair).get_object("data", "data/x.txt")
        try:
            self.assertEqual(response.read(), body_of("data", "data/x.txt"))
        finally:
            response.close()
            response.release_conn()
        with self.assertRaises(MinioError) as raised:
            list(client(FULL.wrong()).list_objects("data", prefix="data/"))
        self.assertEqual(raised.exception.code, "SignatureDoesNotMatch")
        self.assertEqual(raised.exception.response.status, 403)


def _fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    """
    A plain HTTP GET, as a browser or curl would send it.

    :return: status, body and headers (names lower-cased).
    """
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, response.read(), headers
    except urllib.error.HTTPError as e:
        headers = {k.lower(): v for k, v in e.headers.items()}
        return e.code, e.read(), headers


class PresignedTests(_AuthMixin, SynchronousTestCase):
    """
    Presigned URLs from boto3 (SigV4 and SigV2), aws-cli and minio-py.
    """

    def _check_refused(self, url: str, status: int, code: str) -> None:
        got_status, body, headers = _fetch(url)
        response = RawResponse(got_status, tuple(headers.items()), body)
        check_error(self, response, status, code)

    def test_boto3_sigv4(self) -> None:
        """
        A boto3 SigV4 presigned GET works with a plain GET; changed, its
        signature no longer matches; expired, it is C{AccessDenied}.
        """
        client = self.world.client(FULL.pair)
        url = client.generate_presigned_url(
            "get_object",
            Params={"Bucket": "data", "Key": "data/sub/y.txt"},
            ExpiresIn=300,
        )
        self.assertIn("X-Amz-Signature=", url)
        status, body, _ = _fetch(url)
        self.assertEqual((status, body), (200, body_of("data", "data/sub/y.txt")))
        self._check_refused(
            url.replace("data/sub/y.txt", "data/x.txt"), 403, "SignatureDoesNotMatch"
        )
        past = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=past):
            stale = client.generate_presigned_url(
                "get_object",
                Params={"Bucket": "data", "Key": "data/x.txt"},
                ExpiresIn=60,
            )
        self._check_refused(stale, 403, "AccessDenied")
        wrong = self.world.client(FULL.wrong()).generate_presigned_url(
            "get_object", Params={"Bucket": "data", "Key": "data/x.txt"}, ExpiresIn=300
        )
        self._check_refused(wrong, 403, "SignatureDoesNotMatch")

    def test_boto3_sigv2(self) -> None:
        """
        boto3's SigV2 presigner (C{signature_version="s3"}) makes URLs that
        work too, and refuses a tampered one.
        """
        client = self.world.client(FULL.pair, signature_version="s3")
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": "data", "Key": "data/x.txt"}, ExpiresIn=300
        )
        self.assertIn("AWSAccessKeyId=", url)
        self.assertIn("Signature=", url)
        status, body, _ = _fetch(url)
        self.assertEqual((status, body), (200, body_of("data", "data/x.txt")))
        self._check_refused(
            url.replace("data/x.txt", "top.txt"), 403, "SignatureDoesNotMatch"
        )

    def test_aws_cli_presign(self) -> None:
        """
        C{aws s3 presign} makes a URL that works with a plain GET.
        """
        env = client_environment(
            self.directory,
            AWS_ACCESS_KEY_ID=FULL.access_key,
            AWS_SECRET_ACCESS_KEY=FULL.secret,
        )
        done = subprocess.run(
            [
                str(BIN_DIR / "aws"),
                "--endpoint-url",
                self.world.daemon.url,
                "--region",
                REGION,
                "s3",
                "presign",
                "s3://data/reports/r.txt",
                "--expires-in",
                "300",
            ],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        url = done.stdout.decode().strip()
        self.assertTrue(url.startswith(self.world.daemon.url), url)
        status, body, _ = _fetch(url)
        self.assertEqual((status, body), (200, body_of("data", "reports/r.txt")))

    def test_minio_presign(self) -> None:
        """
        minio-py's C{presigned_get_object} makes a URL that works with a
        plain GET; one signed two hours ago for a minute is
        C{AccessDenied}.
        """
        from minio import Minio

        client = Minio(
            self.world.daemon.url.removeprefix("http://"),
            access_key=FULL.access_key,
            secret_key=FULL.secret,
            secure=False,
            region=REGION,
        )
        url = client.presigned_get_object(
            "data", "data/x.txt", expires=timedelta(minutes=5)
        )
        status, body, _ = _fetch(url)
        self.assertEqual((status, body), (200, body_of("data", "data/x.txt")))
        stale = client.presigned_get_object(
            "data",
            "data/x.txt",
            expires=timedelta(seconds=60),
            request_date=datetime.now(UTC) - timedelta(hours=2),
        )
        self._check_refused(stale, 403, "AccessDenied")

    def test_presigned_scope(self) -> None:
        """
        A presigned URL carries its signer's rights, no more: OTHER's URL for
        a C{data} object is C{AccessDenied}.
        """
        url = self.world.client(OTHER.pair).generate_presigned_url(
            "get_object", Params={"Bucket": "data", "Key": "data/x.txt"}, ExpiresIn=300
        )
        self._check_refused(url, 403, "AccessDenied")
        query = parse_qs(urlsplit(url).query)
        self.assertEqual(query["X-Amz-Credential"][0].split("/")[0], OTHER.access_key)


class ScopeTests(_AuthMixin, SynchronousTestCase):
    """
    What each credential may do: buckets, prefixes, actions.
    """

    def test_prefix_boundary(self) -> None:
        """
        The prefix C{data} covers the key C{data} and keys under C{data/},
        but not C{data-private/x.txt} nor anything else.
        """
        for key in ("data", "data/x.txt", "data/sub/y.txt"):
            response = self.get(SCOPED.pair, object_path("data", key))
            self.assertEqual(
                (response.status, response.body), (200, body_of("data", key))
            )
        for key in ("data-private/x.txt", "reports/r.txt", "top.txt", "datax"):
            response = self.get(SCOPED.pair, object_path("data", key))
            check_error(self, response, 403, "AccessDenied")
        client = self.world.client(SCOPED.pair)
        listed = client.list_objects_v2(Bucket="data", Prefix="data/")
        self.assertEqual(
            [o["Key"] for o in listed["Contents"]], ["data/sub/y.txt", "data/x.txt"]
        )
        for prefix in ("", "data-private/", "reports/"):
            with self.assertRaises(ClientError) as raised:
                client.list_objects_v2(Bucket="data", Prefix=prefix)
            check_client_error(self, raised.exception, 403, "AccessDenied")

    def test_actions(self) -> None:
        """
        A C{get_object}-only key reads (and heads) objects but cannot list.
        """
        client = self.world.client(GET_ONLY.pair)
        got = client.get_object(Bucket="data", Key="top.txt")["Body"].read()
        self.assertEqual(got, body_of("data", "top.txt"))
        self.assertEqual(
            client.head_object(Bucket="data", Key="top.txt")["ContentLength"],
            len(body_of("data", "top.txt")),
        )
        for call in (
            lambda: client.list_objects_v2(Bucket="data"),
            lambda: client.list_objects(Bucket="data"),
        ):
            with self.assertRaises(ClientError) as raised:
                call()
            check_client_error(self, raised.exception, 403, "AccessDenied")
        with self.assertRaises(ClientError) as raised:
            client.get_object(Bucket="other", Key="top.txt")
        check_client_error(self, raised.exception, 403, "AccessDenied")

    def test_every_bucket(self) -> None:
        """
        C{bucket = "*"} reaches every bucket; a glob C{da*} only the
        matching ones.
        """
        for bucket in ("data", "other", "public"):
            response = self.get(FULL.pair, object_path(bucket, "top.txt"))
            self.assertEqual(response.body, body_of(bucket, "top.txt"))
        self.assertEqual(self.get(GLOB.pair, "/data/top.txt").status, 200)
        check_error(self, self.get(GLOB.pair, "/other/top.txt"), 403, "AccessDenied")

    def test_list_buckets(self) -> None:
        """
        ListBuckets shows each caller only the buckets it may use.
        """
        expected = {
            FULL: ["data", "other", "public"],
            SCOPED: ["data", "public"],
            GET_ONLY: ["data", "public"],
            OTHER: ["other", "public"],
            GLOB: ["data", "public"],
        }
        for key, names in expected.items():
            buckets = self.world.client(key.pair).list_buckets()["Buckets"]
            self.assertEqual([b["Name"] for b in buckets], names, key.access_key)
        anonymous = self.world.anonymous().list_buckets()["Buckets"]
        self.assertEqual([b["Name"] for b in anonymous], ["public"])

    def test_bucket_operations_need_a_grant(self) -> None:
        """
        HeadBucket and GetBucketLocation answer callers with a grant on the
        bucket, and are C{AccessDenied} for others.
        """
        self.world.client(SCOPED.pair).head_bucket(Bucket="data")
        self.world.client(GET_ONLY.pair).get_bucket_location(Bucket="data")
        with self.assertRaises(ClientError) as raised:
            self.world.client(OTHER.pair).head_bucket(Bucket="data")
        self.assertEqual(http_status(raised.exception), 403)
        response = self.get(OTHER.pair, "/data?location")
        check_error(self, response, 403, "AccessDenied")


class AnonymousTests(_AuthMixin, SynchronousTestCase):
    """
    C{anonymous_access} grants reads, and only reads.
    """

    def test_anonymous_reads(self) -> None:
        """
        Unsigned requests read, head and list the anonymous bucket.
        """
        client = self.world.anonymous()
        got = client.get_object(Bucket="public", Key="top.txt")["Body"].read()
        self.assertEqual(got, body_of("public", "top.txt"))
        client.head_object(Bucket="public", Key="top.txt")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="public")["Contents"]]
        # In SeaweedFS's own order (a directory walk), so compared as sets.
        self.assertEqual(sorted(keys), sorted(DATA_KEYS))
        status, body, _ = _fetch(f"{self.world.daemon.url}/public/reports/r.txt")
        self.assertEqual((status, body), (200, body_of("public", "reports/r.txt")))

    def test_signed_callers_read_anonymous_buckets(self) -> None:
        """
        A signed caller without a scope for the anonymous bucket still reads
        it, as anyone may.
        """
        response = self.get(OTHER.pair, "/public/top.txt")
        self.assertEqual(response.body, body_of("public", "top.txt"))

    def test_never_writes(self) -> None:
        """
        Nobody writes to the anonymous bucket through its anonymity: PUT and
        DELETE, unsigned or signed by a key without write grants, are 403
        C{AccessDenied} and change nothing.
        """
        port = self.world.daemon.port
        for method, key in (("PUT", "new.txt"), ("DELETE", "top.txt")):
            body = b"hello" if method == "PUT" else b""
            response = send_raw(port, method, f"/public/{key}", body=body)
            check_error(self, response, 403, "AccessDenied")
        for method, key in (("PUT", "new.txt"), ("DELETE", "top.txt")):
            response = self.get(OTHER.pair, f"/public/{key}", method=method)
            check_error(self, response, 403, "AccessDenied")
        with self.assertRaises(ClientError) as raised:
            self.world.anonymous().delete_object(Bucket="public", Key="top.txt")
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (403, "AccessDenied"),
        )
        self.assertTrue(self.world.backend_has("public", "top.txt"))
        self.assertFalse(self.world.backend_has("public", "new.txt"))
        document = (
            b"<Delete><Object><Key>top.txt</Key></Object><Quiet>true</Quiet></Delete>"
        )
        response = send_raw(port, "POST", "/public?delete", body=document)
        check_error(self, response, 403, "AccessDenied")

    def test_private_buckets_refused(self) -> None:
        """
        Unsigned requests to a private bucket are C{AccessDenied}.
        """
        for target in ("/data/top.txt", "/data?list-type=2", "/other"):
            check_error(
                self,
                send_raw(self.world.daemon.port, "GET", target),
                403,
                "AccessDenied",
            )


class ExistenceTests(_AuthMixin, SynchronousTestCase):
    """
    A caller who may not use a bucket cannot learn whether it exists.
    """

    def _answers(
        self, key: tuple[str, str] | None, bucket: str
    ) -> list[tuple[int, str, str]]:
        """
        :return: ``(status, code, message)`` of a GetObject, a listing and a
            GetBucketLocation on ``bucket`` (signed with ``key``, or not).
        """
        port = self.world.daemon.port
        answers = []
        for target in (
            object_path(bucket, "top.txt"),
            f"/{bucket}?list-type=2",
            f"/{bucket}?location",
        ):
            if key is None:
                response = send_raw(port, "GET", target)
            else:
                response = self.get(key, target)
            document = check_error(
                self, response, response.status, parse_error(response.body)["Code"]
            )
            answers.append((response.status, document["Code"], document["Message"]))
        head = (
            send_raw(port, "HEAD", f"/{bucket}")
            if key is None
            else self.get(key, f"/{bucket}", method="HEAD")
        )
        answers.append((head.status, "", ""))
        return answers

    def test_existing_and_missing_alike(self) -> None:
        """
        For a key scoped to another bucket, and for anonymous callers, an
        existing private bucket and a missing one answer identically: 403
        C{AccessDenied}.
        """
        missing = f"missing-{uuid4().hex[:8]}"
        for key in (OTHER.pair, SCOPED.pair, None):
            existing = self._answers(key, "other" if key != OTHER.pair else "data")
            absent = self._answers(key, missing)
            self.assertEqual(existing, absent, key)
            self.assertEqual({a[0] for a in existing}, {403})
            self.assertEqual({a[1] for a in existing[:3]}, {"AccessDenied"})

    def test_every_bucket_scope_sees_no_such_bucket(self) -> None:
        """
        A caller whose scopes cover every bucket is told C{NoSuchBucket}
        (404) for a missing one; a glob scope, for a missing name it
        matches.
        """
        missing = f"missing-{uuid4().hex[:8]}"
        for target in (object_path(missing, "top.txt"), f"/{missing}?list-type=2"):
            check_error(self, self.get(FULL.pair, target), 404, "NoSuchBucket")
        check_error(
            self, self.get(GLOB.pair, f"/da{missing}?list-type=2"), 404, "NoSuchBucket"
        )
        check_error(
            self, self.get(GLOB.pair, f"/{missing}?list-type=2"), 403, "AccessDenied"
        )
        head = self.get(FULL.pair, f"/{missing}", method="HEAD")
        self.assertEqual((head.status, head.body), (404, b""))
