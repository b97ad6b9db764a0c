# mypy: disable-error-code="no-untyped-call"
"""
The local-directory (C{file}) backend through the daemon, with boto3 and
aws-cli: reads are byte-exact, ETags and Last-Modified are stable and agree
with listings, ranges and conditional requests behave as on S3, listings
(V1 and V2) page, roll up and start as S3's do, and nothing outside the
directory (a symbolic link out of it, the reserved C{.multistore} tree,
names that are not UTF-8, empty directories) is ever served or listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from attrs import frozen
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    BIN_DIR,
    Daemon,
    DaemonFactory,
    error_code,
    http_status,
    s3_client,
)

ACCESS_KEY: Final = "AKLOCALBACKEND000001"
SECRET_KEY: Final = "local-backend-secret-0123456789"

#: The modification time of every file in the tree.
MTIME: Final = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

#: The files of the tree, by key.
FILES: Final = {
    "hello.txt": b"hello, world\n",
    "empty": b"",
    "dir/a.txt": b"a" * 1000,
    "dir/b.txt": b"bee\n",
    "dir/sub/c.txt": b"see\n",
    "dir/sub/deeper/d.bin": bytes(range(256)) * 300,
    "odd/with space.txt": b"space\n",
    "odd/100%.txt": b"percent\n",
    "odd/100%25.txt": b"percent-two-five\n",
    "odd/a+b.txt": b"plus\n",
    "odd/café.txt": b"accent\n",
    "odd/日本語.txt": b"cjk\n",
    "odd/eq=amp&.txt": b"eq-amp\n",
    "odd/semi;colon,comma": b"semi\n",
    "odd/hash#tag": b"hash\n",
    "odd/tilde~star*": b"tilde\n",
    "odd/(paren)[bracket]{brace}": b"brackets\n",
    "odd/quote'bang!at@dollar$": b"quote\n",
    "odd/dots..twice...": b"dots\n",
    **{f"many/{n:04d}.txt": b"%d\n" % n for n in range(25)},
}

#: A symbolic link inside the tree, to a file inside it.
INSIDE_LINK: Final = "inside-link"

#: Every key a full listing shows.
LISTED: Final = sorted([*FILES, INSIDE_LINK], key=lambda k: k.encode("utf-8"))

_SECRET: Final = b"outside the bucket: never served\n"


def _content(key: str) -> bytes:
    return FILES["hello.txt"] if key == INSIDE_LINK else FILES[key]


def _build_tree(root: Path, outside: Path) -> None:
    """
    Write L{FILES} under ``root``, plus what must never show: links out of
    the tree, the reserved C{.multistore} directory with an empty file in
    it, a name that is not UTF-8, and an empty directory.
    """
    for key, data in FILES.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (outside / "secret.txt").write_bytes(_SECRET)
    (root / "escape").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "dir" / "sub" / "escape-up").symlink_to("../../../outside/secret.txt")
    (root / INSIDE_LINK).symlink_to("hello.txt")
    (root / ".multistore").mkdir()
    (root / ".multistore" / "meta").write_bytes(b"")
    (root / "emptydir" / "nested").mkdir(parents=True)
    os.close(os.open(bytes(root) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    stamp = MTIME.timestamp()
    for path in [*root.rglob("*"), root / "bad\udcff.txt"]:
        if not path.is_symlink():
            os.utime(path, (stamp, stamp))


@frozen
class Tree:
    """
    The module's daemon and its directory.

    :ivar daemon: buckets C{files} (the tree, anonymous reads) and
        C{prefixed} (the same tree under C{backend_prefix = "dir"}, private);
        L{ACCESS_KEY} may read and list both.
    :ivar root: the tree.
    """

    daemon: Daemon
    root: Path


@pytest.fixture(scope="module")
def tree(
    module_multistore_daemon: DaemonFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Tree]:
    """
    Build the tree and start the daemon.
    """
    base = tmp_path_factory.mktemp("local-backend")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    _build_tree(root, outside)
    daemon = module_multistore_daemon(
        {
            "buckets": [
                {
                    "name": "files",
                    "backend_type": "file",
                    "anonymous_access": True,
                    "backend_options": {"root": str(root)},
                },
                {
                    "name": "prefixed",
                    "backend_type": "file",
                    "backend_prefix": "dir",
                    "backend_options": {"root": str(root)},
                },
            ],
            "credentials": [
                {
                    "access_key_id": ACCESS_KEY,
                    "secret_access_key": SECRET_KEY,
                    "allowed_scopes": [
                        {
                            "bucket": "*",
                            "actions": ["get_object", "list_bucket"],
                        }
                    ],
                }
            ],
        }
    )
    yield Tree(daemon, root)


class _Base(SynchronousTestCase):
    @pytest.fixture(autouse=True)
    def _tree(self, tree: Tree, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.daemon = tree.daemon
        self.root = tree.root
        self.s3 = s3_client(self.daemon.url, ACCESS_KEY, SECRET_KEY)

    def assert_error(self, call: Any, status: int, code: str) -> ClientError:
        """
        Check that ``call()`` fails with ``status`` and ``code``.
        """
        with self.assertRaises(ClientError) as raised:
            call()
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (status, code),
        )
        return raised.exception

    def list_v2(self, bucket: str = "files", **params: Any) -> list[str]:
        """
        :return: every key of a V2 listing, following continuation tokens.
        """
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, **params):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys


class ObjectTests(_Base):
    """
    GetObject and HeadObject on files.
    """

    def test_get_byte_exact(self) -> None:
        """
        Every file, odd names included, reads back byte for byte with its
        length, a guessed type and ``Accept-Ranges``; a link to a file
        inside the tree reads as that file.
        """
        for key in LISTED:
            got = self.s3.get_object(Bucket="files", Key=key)
            self.assertEqual(got["Body"].read(), _content(key), key)
            self.assertEqual(got["ContentLength"], len(_content(key)), key)
            self.assertEqual(got["AcceptRanges"], "bytes")
        got = self.s3.get_object(Bucket="files", Key="hello.txt")
        self.assertEqual(got["ContentType"], "text/plain")

    def test_anonymous_get(self) -> None:
        """
        The anonymous bucket serves unsigned reads too.
        """
        anonymous = s3_client(self.daemon.url, unsigned=True)
        got = anonymous.get_object(Bucket="files", Key="odd/日本語.txt")
        self.assertEqual(got["Body"].read(), FILES["odd/日本語.txt"])

    def test_empty_file(self) -> None:
        """
        An empty file is an empty object.
        """
        got = self.s3.get_object(Bucket="files", Key="empty")
        self.assertEqual(got["Body"].read(), b"")
        self.assertEqual(got["ContentLength"], 0)
        self.assertEqual(
            self.s3.head_object(Bucket="files", Key="empty")["ContentLength"], 0
        )

    def test_head(self) -> None:
        """
        HEAD gives the length, ETag and Last-Modified of GET, and no body.
        """
        head = self.s3.head_object(Bucket="files", Key="dir/sub/deeper/d.bin")
        get = self.s3.get_object(Bucket="files", Key="dir/sub/deeper/d.bin")
        get["Body"].read()
        self.assertEqual(head["ContentLength"], len(FILES["dir/sub/deeper/d.bin"]))
        self.assertEqual(head["ETag"], get["ETag"])
        self.assertEqual(head["LastModified"], get["LastModified"])
        self.assertEqual(head["LastModified"], MTIME)

    def test_etag_stable_and_listed(self) -> None:
        """
        A file's ETag is the same on every request and in listings, differs
        between files, and changes when the file does.
        """
        listing = self.s3.list_objects_v2(Bucket="files", Prefix="dir/")
        listed = {o["Key"]: o["ETag"] for o in listing["Contents"]}
        for key, etag in listed.items():
            for _ in range(2):
                self.assertEqual(
                    self.s3.head_object(Bucket="files", Key=key)["ETag"], etag
                )
            got = self.s3.get_object(Bucket="files", Key=key)
            got["Body"].read()
            self.assertEqual(got["ETag"], etag)
        self.assertEqual(len(set(listed.values())), len(listed))

        path = self.root / "mutable.txt"
        path.write_bytes(b"first\n")
        os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
        try:
            before = self.s3.head_object(Bucket="files", Key="mutable.txt")
            path.write_bytes(b"second\n")
            later = MTIME.timestamp() + 60
            os.utime(path, (later, later))
            after = self.s3.head_object(Bucket="files", Key="mutable.txt")
        finally:
            path.unlink()
        self.assertNotEqual(before["ETag"], after["ETag"])
        self.assertEqual(after["LastModified"], MTIME + timedelta(seconds=60))

    def test_last_modified_in_listing(self) -> None:
        """
        Listings report each file's modification time, as HEAD does.
        """
        listing = self.s3.list_objects_v2(Bucket="files", Prefix="odd/")
        self.assertEqual({o["LastModified"] for o in listing["Contents"]}, {MTIME})

    def test_ranges(self) -> None:
        """
        Byte ranges, open-ended and suffix ranges answer 206 with the bytes
        and ``Content-Range``; a suffix longer than the file is the whole
        file.
        """
        body = FILES["dir/sub/deeper/d.bin"]
        size = len(body)
        for header, start, end in (
            ("bytes=0-0", 0, 0),
            ("bytes=10-99", 10, 99),
            ("bytes=700-", 700, size - 1),
            ("bytes=-5", size - 5, size - 1),
            (f"bytes=-{size + 100}", 0, size - 1),
            (f"bytes=5-{size + 100}", 5, size - 1),
        ):
            got = self.s3.get_object(
                Bucket="files", Key="dir/sub/deeper/d.bin", Range=header
            )
            self.assertEqual(got["ResponseMetadata"]["HTTPStatusCode"], 206, header)
            self.assertEqual(got["Body"].read(), body[start : end + 1], header)
            self.assertEqual(got["ContentRange"], f"bytes {start}-{end}/{size}")
            self.assertEqual(got["ContentLength"], end - start + 1)

    def test_unsatisfiable_range(self) -> None:
        """
        A range starting past the end is 416 ``InvalidRange`` with
        ``Content-Range: bytes */SIZE``.
        """
        size = len(FILES["dir/b.txt"])
        error = self.assert_error(
            lambda: self.s3.get_object(
                Bucket="files", Key="dir/b.txt", Range="bytes=100-200"
            ),
            416,
            "InvalidRange",
        )
        headers = error.response["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(headers.get("content-range"), f"bytes */{size}")

    def test_conditionals(self) -> None:
        """
        ``If-None-Match`` and ``If-Modified-Since`` give 304 when nothing
        changed; ``If-Match`` and ``If-Unmodified-Since`` give 412 when they
        fail; the combinations S3 documents win as S3 says.
        """
        key = "hello.txt"
        etag = self.s3.head_object(Bucket="files", Key=key)["ETag"]
        earlier = MTIME - timedelta(days=1)
        later = MTIME + timedelta(days=1)

        def get(**conditions: Any) -> int:
            got = self.s3.get_object(Bucket="files", Key=key, **conditions)
            self.assertEqual(got["Body"].read(), FILES[key])
            return int(got["ResponseMetadata"]["HTTPStatusCode"])

        self.assertEqual(get(IfMatch=etag), 200)
        self.assertEqual(get(IfNoneMatch='"other"'), 200)
        self.assertEqual(get(IfModifiedSince=earlier), 200)
        self.assertEqual(get(IfUnmodifiedSince=MTIME), 200)
        # If-Match true and If-Unmodified-Since false: 200, as S3.
        self.assertEqual(get(IfMatch=etag, IfUnmodifiedSince=earlier), 200)
        for conditions in (
            {"IfNoneMatch": etag},
            {"IfNoneMatch": "*"},
            {"IfModifiedSince": MTIME},
            {"IfModifiedSince": later},
            # If-None-Match false and If-Modified-Since true: 304, as S3.
            {"IfNoneMatch": etag, "IfModifiedSince": earlier},
        ):
            error = self.assert_error(
                lambda c=conditions: self.s3.get_object(Bucket="files", Key=key, **c),
                304,
                "304",
            )
            headers = error.response["ResponseMetadata"]["HTTPHeaders"]
            self.assertEqual(headers.get("etag"), etag, conditions)
        for conditions in (
            {"IfMatch": '"other"'},
            {"IfUnmodifiedSince": earlier},
        ):
            self.assert_error(
                lambda c=conditions: self.s3.get_object(Bucket="files", Key=key, **c),
                412,
                "PreconditionFailed",
            )
        self.assert_error(
            lambda: self.s3.head_object(Bucket="files", Key=key, IfMatch='"other"'),
            412,
            "412",
        )
        self.assert_error(
            lambda: self.s3.head_object(Bucket="files", Key=key, IfNoneMatch=etag),
            304,
            "304",
        )

    def test_missing(self) -> None:
        """
        Keys that are not files are ``NoSuchKey``: a missing file, a
        directory, a key with an empty segment or a trailing slash.
        """
        for key in ("nope", "dir", "dir/", "dir//a.txt", "emptydir", "dir/sub"):
            self.assert_error(
                lambda k=key: self.s3.get_object(Bucket="files", Key=k),
                404,
                "NoSuchKey",
            )


class ConfinementTests(_Base):
    """
    Nothing outside the tree, and nothing reserved, is ever served or listed.
    """

    def test_links_out_not_served(self) -> None:
        """
        A symbolic link to a file outside the tree, a file reached through a
        link to a directory outside it, and a relative link climbing out of
        it are all ``NoSuchKey``.
        """
        for key in ("escape", "escape-dir/secret.txt", "dir/sub/escape-up"):
            error = self.assert_error(
                lambda k=key: self.s3.get_object(Bucket="files", Key=k),
                404,
                "NoSuchKey",
            )
            self.assertNotIn(_SECRET, repr(error.response).encode())

    def test_reserved_not_served(self) -> None:
        """
        Keys in the reserved C{.multistore} tree are refused with
        ``InvalidArgument``, for GET and HEAD.
        """
        for key in (".multistore/meta", ".multistore", ".multistore/"):
            self.assert_error(
                lambda k=key: self.s3.get_object(Bucket="files", Key=k),
                400,
                "InvalidArgument",
            )
            self.assert_error(
                lambda k=key: self.s3.head_object(Bucket="files", Key=k), 400, "400"
            )

    def test_not_listed(self) -> None:
        """
        A full listing holds exactly the files (and the link inside the
        tree): no link out, no C{.multistore}, no name that is not UTF-8, no
        empty directory; a listing of the reserved prefix is empty.
        """
        self.assertEqual(self.list_v2(), LISTED)
        self.assertEqual(self.list_v2(Prefix=".multistore"), [])
        self.assertEqual(self.list_v2(Prefix="escape"), [])
        rolled = self.s3.list_objects_v2(Bucket="files", Delimiter="/")
        self.assertEqual(
            [p["Prefix"] for p in rolled.get("CommonPrefixes", [])],
            ["dir/", "many/", "odd/"],
        )


class ListingTests(_Base):
    """
    ListObjectsV2 and ListObjects (V1) over the tree.
    """

    def test_v2_sizes_and_order(self) -> None:
        """
        A V2 listing gives every key in UTF-8 byte order with its size.
        """
        listing = self.s3.list_objects_v2(Bucket="files")
        self.assertEqual(listing["KeyCount"], len(LISTED))
        self.assertFalse(listing["IsTruncated"])
        self.assertEqual(
            [(o["Key"], o["Size"]) for o in listing["Contents"]],
            [(k, len(_content(k))) for k in LISTED],
        )

    def test_v2_prefix_delimiter(self) -> None:
        """
        Prefix and delimiter roll keys up into common prefixes, level by
        level.
        """
        root = self.s3.list_objects_v2(Bucket="files", Delimiter="/")
        self.assertEqual(
            [o["Key"] for o in root["Contents"]],
            ["empty", "hello.txt", INSIDE_LINK],
        )
        level = self.s3.list_objects_v2(Bucket="files", Prefix="dir/", Delimiter="/")
        self.assertEqual(
            [o["Key"] for o in level["Contents"]], ["dir/a.txt", "dir/b.txt"]
        )
        self.assertEqual([p["Prefix"] for p in level["CommonPrefixes"]], ["dir/sub/"])
        self.assertEqual(level["KeyCount"], 3)
        partial = self.s3.list_objects_v2(Bucket="files", Prefix="dir/s")
        self.assertEqual(
            [o["Key"] for o in partial["Contents"]],
            ["dir/sub/c.txt", "dir/sub/deeper/d.bin"],
        )
        odd = self.s3.list_objects_v2(Bucket="files", Prefix="odd/100%")
        self.assertEqual(
            [o["Key"] for o in odd["Contents"]], ["odd/100%.txt", "odd/100%25.txt"]
        )

    def test_v2_pagination(self) -> None:
        """
        Small pages (``max-keys``), followed by continuation token, give the
        full listing, each page truncated but the last; with a delimiter too.
        """
        self.assertEqual(self.list_v2(PaginationConfig={"PageSize": 7}), LISTED)
        first = self.s3.list_objects_v2(Bucket="files", MaxKeys=7)
        self.assertTrue(first["IsTruncated"])
        self.assertEqual(first["KeyCount"], 7)
        self.assertEqual([o["Key"] for o in first["Contents"]], LISTED[:7])
        second = self.s3.list_objects_v2(
            Bucket="files", MaxKeys=7, ContinuationToken=first["NextContinuationToken"]
        )
        self.assertEqual([o["Key"] for o in second["Contents"]], LISTED[7:14])
        prefixes: list[str] = []
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket="files", Delimiter="/", PaginationConfig={"PageSize": 2}
        ):
            keys.extend(o["Key"] for o in page.get("Contents", []))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        self.assertEqual(keys, ["empty", "hello.txt", INSIDE_LINK])
        self.assertEqual(prefixes, ["dir/", "many/", "odd/"])
        empty = self.s3.list_objects_v2(Bucket="files", MaxKeys=0)
        self.assertEqual(empty["KeyCount"], 0)
        self.assertNotIn("Contents", empty)

    def test_v2_start_after(self) -> None:
        """
        ``start-after`` lists the keys after it, whether or not it names a
        key, and inside or outside a directory.
        """
        for start_after in ("dir/b.txt", "dir/b", "many/0010.txt", "odd/", "a", "zzz"):
            self.assertEqual(
                self.list_v2(StartAfter=start_after),
                [k for k in LISTED if k.encode() > start_after.encode()],
                start_after,
            )
        self.assertEqual(
            self.list_v2(StartAfter="many/0020.txt", Prefix="many/"),
            [f"many/{n:04d}.txt" for n in range(21, 25)],
        )

    def test_v1(self) -> None:
        """
        V1 listings page by marker (with ``NextMarker`` with or without a
        delimiter) and roll up with prefix and delimiter.
        """
        keys: list[str] = []
        marker = ""
        pages = 0
        while True:
            page = self.s3.list_objects(Bucket="files", MaxKeys=6, Marker=marker)
            pages += 1
            keys.extend(o["Key"] for o in page.get("Contents", []))
            if not page["IsTruncated"]:
                break
            marker = page["NextMarker"]
            self.assertEqual(marker, keys[-1])
        self.assertEqual(keys, LISTED)
        self.assertEqual(pages, -(-len(LISTED) // 6))
        level = self.s3.list_objects(Bucket="files", Prefix="dir/", Delimiter="/")
        self.assertEqual(
            [o["Key"] for o in level["Contents"]], ["dir/a.txt", "dir/b.txt"]
        )
        self.assertEqual([p["Prefix"] for p in level["CommonPrefixes"]], ["dir/sub/"])
        self.assertEqual(
            [
                o["Key"]
                for o in self.s3.list_objects(
                    Bucket="files", Marker="many/0023.txt", Prefix="many/"
                )["Contents"]
            ],
            ["many/0024.txt"],
        )
        rolled: list[str] = []
        paginator = self.s3.get_paginator("list_objects")
        for page in paginator.paginate(
            Bucket="files", Delimiter="/", PaginationConfig={"PageSize": 2}
        ):
            rolled.extend(o["Key"] for o in page.get("Contents", []))
            rolled.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        self.assertEqual(
            sorted(rolled),
            sorted(["empty", "hello.txt", INSIDE_LINK, "dir/", "many/", "odd/"]),
        )
        self.assertEqual(len(rolled), 6)


class BackendPrefixTests(_Base):
    """
    A C{file} bucket under a ``backend_prefix``: the subdirectory is the
    bucket, and the prefix never shows.
    """

    def test_reads(self) -> None:
        """
        Keys map below the prefix, with the same ETags as the full tree's.
        """
        got = self.s3.get_object(Bucket="prefixed", Key="sub/deeper/d.bin")
        self.assertEqual(got["Body"].read(), FILES["dir/sub/deeper/d.bin"])
        full = self.s3.head_object(Bucket="files", Key="dir/sub/deeper/d.bin")
        self.assertEqual(got["ETag"], full["ETag"])
        self.assert_error(
            lambda: self.s3.get_object(Bucket="prefixed", Key="hello.txt"),
            404,
            "NoSuchKey",
        )
        self.assert_error(
            lambda: self.s3.get_object(Bucket="prefixed", Key="../hello.txt"),
            400,
            "InvalidArgument",
        )

    def test_listings(self) -> None:
        """
        Listings show keys relative to the prefix, page without it, and roll
        up below it.
        """
        expected = ["a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.bin"]
        self.assertEqual(self.list_v2("prefixed"), expected)
        self.assertEqual(
            self.list_v2("prefixed", PaginationConfig={"PageSize": 1}), expected
        )
        level = self.s3.list_objects_v2(Bucket="prefixed", Delimiter="/")
        self.assertEqual([o["Key"] for o in level["Contents"]], ["a.txt", "b.txt"])
        self.assertEqual([p["Prefix"] for p in level["CommonPrefixes"]], ["sub/"])
        v1 = self.s3.list_objects(Bucket="prefixed", MaxKeys=2)
        self.assertEqual([o["Key"] for o in v1["Contents"]], ["a.txt", "b.txt"])
        self.assertEqual(v1["NextMarker"], "b.txt")
        rest = self.s3.list_objects(Bucket="prefixed", Marker=v1["NextMarker"])
        self.assertEqual([o["Key"] for o in rest["Contents"]], expected[2:])
        self.assertEqual(
            self.list_v2("prefixed", StartAfter="sub/c.txt"), ["sub/deeper/d.bin"]
        )


class AwsCliTests(_Base):
    """
    aws-cli against the anonymous C{file} bucket.
    """

    def aws(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """
        Run aws-cli without credentials against the daemon.

        :return: the finished process (already checked for success).
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
        )
        result = subprocess.run(
            [
                sys.executable,
                str(BIN_DIR / "aws"),
                "--endpoint-url",
                self.daemon.url,
                "--no-sign-request",
                "--region",
                "us-east-1",
                *args,
            ],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))
        return result

    def test_ls(self) -> None:
        """
        ``aws s3 ls`` shows the top level; ``--recursive`` every key with its
        size.
        """
        top = self.aws("s3", "ls", "s3://files/").stdout.decode().splitlines()
        self.assertEqual(
            sorted(line.split()[-1] for line in top),
            sorted(["dir/", "many/", "odd/", "empty", "hello.txt", INSIDE_LINK]),
        )
        lines = self.aws("s3", "ls", "--recursive", "s3://files/").stdout.decode()
        listed = []
        for line in lines.splitlines():
            _date, _time, size, key = line.split(maxsplit=3)
            listed.append((key, int(size)))
        self.assertEqual(listed, [(k, len(_content(k))) for k in LISTED])

    def test_cp(self) -> None:
        """
        ``aws s3 cp`` of one object to standard output, and of a whole
        directory (``--recursive``), is byte-exact.
        """
        out = self.aws("s3", "cp", "s3://files/odd/café.txt", "-").stdout
        self.assertEqual(out, FILES["odd/café.txt"])
        target = self.tmp / "copy"
        self.aws("s3", "cp", "--recursive", "--quiet", "s3://files/odd/", str(target))
        copied = {
            str(p.relative_to(target)): p.read_bytes()
            for p in target.rglob("*")
            if p.is_file()
        }
        self.assertEqual(
            copied,
            {k[len("odd/") :]: v for k, v in FILES.items() if k.startswith("odd/")},
        )

    def test_s3api(self) -> None:
        """
        ``aws s3api head-object`` and ``list-objects-v2`` agree on the ETag.
        """
        head = json.loads(
            self.aws(
                "s3api", "head-object", "--bucket", "files", "--key", "dir/a.txt"
            ).stdout
        )
        listing = json.loads(
            self.aws(
                "s3api", "list-objects-v2", "--bucket", "files", "--prefix", "dir/a"
            ).stdout
        )
        self.assertEqual(head["ContentLength"], 1000)
        self.assertEqual([o["ETag"] for o in listing["Contents"]], [head["ETag"]])
