"""
Tests for L{multistore.auth.sessions}.

Some tokens here are built by hand, following the format described in the
module's docstring, so the tests check the wire format itself and not only
that L{seal} and L{unseal} agree with each other.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.sessions import (
    MAX_TOKEN_LENGTH,
    InvalidSessionToken,
    SessionCredentials,
    SessionKeys,
    generate_key,
    key_id_of,
    mint,
    seal,
    unseal,
)
from multistore.config import ACTIONS, AccessScope, SessionKey
from multistore.model import Identity
from multistore.s3.errors import S3Error

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
TEXT_A = base64.b64encode(KEY_A).decode("ascii")
TEXT_B = base64.b64encode(KEY_B).decode("ascii")

KEYS = SessionKeys([("current", KEY_A)])

SCOPES = (
    AccessScope(
        bucket="ci-artifacts",
        prefixes=("octo-org/widgets/",),
        actions=frozenset({"get_object", "head_object", "put_object", "list_bucket"}),
    ),
    AccessScope(bucket="public-data", actions=frozenset({"get_object"})),
)

GENERIC = "The provided token is malformed or otherwise invalid."


def credentials(
    scopes: Sequence[AccessScope] = SCOPES, duration: int = 3600
) -> SessionCredentials:
    """
    :return: freshly minted credentials for a CI job, issued at L{NOW}.
    """
    return mint(
        "ci-deploy",
        "repo:octo-org/widgets:ref:refs/heads/main",
        scopes,
        duration,
        NOW,
    )


def hand_sealed(
    key: bytes,
    key_id: str,
    access_key_id: str,
    plaintext: bytes,
    version: int = 1,
) -> str:
    """
    Seal ``plaintext`` as the module docstring describes a session token.
    """
    header = bytes((version, len(key_id))) + key_id.encode("ascii")
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(
        nonce, plaintext, header + access_key_id.encode("utf-8")
    )
    return base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode()


def document(creds: SessionCredentials) -> dict[str, Any]:
    """
    :return: the JSON document a token carries for ``creds``.
    """
    return {
        "k": creds.access_key_id,
        "s": creds.secret_access_key,
        "i": int(creds.issued_at.timestamp()),
        "e": int(creds.expiration.timestamp()),
        "r": creds.role_id,
        "u": creds.source_identity,
        "p": creds.principal,
        "c": [[s.bucket, list(s.prefixes), sorted(s.actions)] for s in creds.scopes],
    }


def raw_bytes(token: str) -> bytes:
    """
    :return: the bytes a token encodes.
    """
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def encode(raw: bytes) -> str:
    """
    :return: ``raw`` as a token spells it.
    """
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class MintTests(SynchronousTestCase):
    """
    Tests for L{mint}.
    """

    def test_formats(self) -> None:
        """
        The access key id is C{STSPRXY} and 13 upper-case letters and
        digits, 20 characters; the secret is 40 characters of the standard
        base64 alphabet.
        """
        creds = credentials()
        self.assertRegex(creds.access_key_id, r"\ASTSPRXY[A-Z0-9]{13}\Z")
        self.assertEqual(len(creds.access_key_id), 20)
        self.assertRegex(creds.secret_access_key, r"\A[A-Za-z0-9+/]{40}\Z")

    def test_fields(self) -> None:
        """
        The credentials carry the role, the subject, the scopes as given, a
        principal made of role and subject, and times from C{now}.
        """
        creds = credentials(duration=900)
        self.assertEqual(creds.role_id, "ci-deploy")
        self.assertEqual(
            creds.source_identity, "repo:octo-org/widgets:ref:refs/heads/main"
        )
        self.assertEqual(
            creds.principal, "ci-deploy/repo:octo-org/widgets:ref:refs/heads/main"
        )
        self.assertEqual(creds.scopes, SCOPES)
        self.assertEqual(creds.issued_at, NOW)
        self.assertEqual(creds.expiration, NOW + timedelta(seconds=900))

    def test_principal_given(self) -> None:
        """
        A principal given explicitly is used as is.
        """
        creds = mint("r", "s", (), 900, NOW, principal="deploys")
        self.assertEqual(creds.principal, "deploys")

    def test_whole_seconds_utc(self) -> None:
        """
        Times are in UTC and whole seconds, whatever zone and fraction
        C{now} has; the fraction is dropped, never rounded up.
        """
        now = datetime(
            2026, 3, 1, 14, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2))
        )
        creds = mint("r", "s", (), 1000, now)
        self.assertEqual(creds.issued_at, NOW)
        self.assertEqual(creds.issued_at.utcoffset(), timedelta(0))
        self.assertEqual(creds.expiration, NOW + timedelta(seconds=1000))
        self.assertEqual(creds.expiration.microsecond, 0)

    def test_random(self) -> None:
        """
        Every mint draws a new key id and secret.
        """
        minted = [credentials() for _ in range(200)]
        self.assertEqual(len({c.access_key_id for c in minted}), 200)
        self.assertEqual(len({c.secret_access_key for c in minted}), 200)

    def test_refused(self) -> None:
        """
        A naive C{now} or a duration that is not positive is a programming
        error.
        """
        with self.assertRaises(ValueError):
            mint("r", "s", (), 900, datetime(2026, 3, 1, 12, 0, 0))
        for duration in (0, -1):
            with self.assertRaises(ValueError):
                mint("r", "s", (), duration, NOW)

    def test_naive_times(self) -> None:
        """
        Credentials cannot be made with naive times.
        """
        creds = credentials()
        with self.assertRaises(ValueError):
            SessionCredentials(
                access_key_id=creds.access_key_id,
                secret_access_key=creds.secret_access_key,
                expiration=datetime(2026, 3, 1),
                scopes=(),
                role_id="r",
                source_identity="s",
                principal="p",
                issued_at=NOW,
            )

    def test_repr_hides_secret(self) -> None:
        """
        The secret never shows in a repr (and so in a log).
        """
        creds = credentials()
        self.assertNotIn(creds.secret_access_key, repr(creds))
        self.assertIn(creds.access_key_id, repr(creds))

    def test_identity(self) -> None:
        """
        The identity of a session names its principal, key, scopes and role.
        """
        creds = credentials()
        self.assertEqual(
            creds.identity(),
            Identity(
                kind="session",
                principal=creds.principal,
                access_key_id=creds.access_key_id,
                scopes=SCOPES,
                role="ci-deploy",
            ),
        )


class SessionKeysTests(SynchronousTestCase):
    """
    Tests for L{SessionKeys} and L{generate_key}.
    """

    def test_from_strings(self) -> None:
        """
        Keys are the standard base64 of 32 bytes, with or without padding,
        surrounding whitespace ignored, optionally after a key id and a
        colon; the first seals.
        """
        keys = SessionKeys.from_strings([f"new:{TEXT_B}", f"  {TEXT_A.rstrip('=')}\n"])
        self.assertEqual(keys.key_ids, ("new", key_id_of(KEY_A)))
        self.assertEqual(keys.sealing_key_id, "new")
        self.assertEqual(keys, SessionKeys([("new", KEY_B), (key_id_of(KEY_A), KEY_A)]))

    def test_from_config(self) -> None:
        """
        Keys from the configuration's C{[sts]} table keep their ids and
        order.
        """
        keys = SessionKeys.from_config(
            [SessionKey(key_id="b", key=KEY_B), SessionKey(key_id="a", key=KEY_A)]
        )
        self.assertEqual(keys, SessionKeys([("b", KEY_B), ("a", KEY_A)]))

    def test_key_id_of(self) -> None:
        """
        A key's default id is a short fingerprint, the same every time,
        different for different keys, and usable as a key id.
        """
        self.assertEqual(key_id_of(KEY_A), key_id_of(bytes(KEY_A)))
        self.assertNotEqual(key_id_of(KEY_A), key_id_of(KEY_B))
        self.assertRegex(key_id_of(KEY_A), r"\A[A-Za-z0-9_-]{8}\Z")
        self.assertNotIn(key_id_of(KEY_A), TEXT_A)

    def test_generate_key(self) -> None:
        """
        A generated key is the standard base64 of 32 random bytes, and is
        accepted as a key.
        """
        text = generate_key()
        self.assertEqual(len(base64.b64decode(text, validate=True)), 32)
        SessionKeys.from_strings([text])
        self.assertNotEqual(text, generate_key())

    def test_bad_strings(self) -> None:
        """
        A key that is not base64, or not 32 bytes, or has a bad key id, is
        refused with a message naming which key and what is wrong, and never
        showing the key.
        """
        short = base64.b64encode(KEY_A[:16]).decode("ascii")
        urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode("ascii")
        cases = [
            ([short], "the session token key decodes to 16 bytes", short),
            ([TEXT_A, short], "session token key 2 decodes to 16 bytes", short),
            ([urlsafe], "is not standard base64", urlsafe),
            ([TEXT_A + "=="], "is not", TEXT_A),
            (["   "], "is empty", None),
            (["bad id:" + TEXT_A], "the key id 'bad id' must be", TEXT_A),
            (["x" * 65 + ":" + TEXT_A], "must be 1 to 64", TEXT_A),
        ]
        for strings, message, secret in cases:
            with self.assertRaises(ValueError) as e:
                SessionKeys.from_strings(strings)
            self.assertIn(message, str(e.exception))
            if secret is not None:
                self.assertNotIn(secret.rstrip("="), str(e.exception))

    def test_bad_sets(self) -> None:
        """
        There must be a key; ids must be valid and keys 32 bytes; no id or
        key may be given twice.
        """
        for pairs, message in [
            ([], "no session token key"),
            ([("a", KEY_A[:31])], "31 bytes"),
            ([("", KEY_A)], "must be 1 to 64"),
            ([("a/b", KEY_A)], "must be 1 to 64"),
            ([("a", KEY_A), ("a", KEY_B)], "'a' is given twice"),
            ([("a", KEY_A), ("b", KEY_A)], "under another key id"),
        ]:
            with self.assertRaises(ValueError) as e:
                SessionKeys(pairs)
            self.assertIn(message, str(e.exception))
        with self.assertRaises(ValueError):
            SessionKeys.from_strings([TEXT_A, TEXT_A])
        with self.assertRaises(ValueError):
            SessionKeys.from_strings([])

    def test_repr_hides_keys(self) -> None:
        """
        A repr shows the key ids and nothing of the keys.
        """
        text = repr(SessionKeys([("new", KEY_B), ("old", KEY_A)]))
        self.assertIn("'new'", text)
        self.assertNotIn(repr(KEY_A), text)
        self.assertNotIn(TEXT_A.rstrip("="), text)


class SealTests(SynchronousTestCase):
    """
    Tests for L{seal} and L{unseal} together.
    """

    def assertInvalid(self, token: str, access_key_id: str, keys: SessionKeys) -> str:
        """
        Assert that ``token`` does not open, with S3's generic
        ``InvalidToken``.

        :return: the reason kept for the log.
        """
        with self.assertRaises(InvalidSessionToken) as e:
            unseal(token, access_key_id, keys, NOW)
        error: InvalidSessionToken = e.exception
        self.assertIsInstance(error, S3Error)
        self.assertEqual(error.code, "InvalidToken")
        self.assertEqual(error.status, 400)
        self.assertEqual(error.message, GENERIC)
        self.assertEqual(error.args, ("InvalidToken", GENERIC))
        self.assertEqual(error.extra, ())
        return error.reason

    def test_round_trip(self) -> None:
        """
        A sealed token opens, with its access key id, to the credentials it
        was made from.
        """
        creds = credentials()
        token = seal(creds, KEYS)
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)

    def test_shape(self) -> None:
        """
        A token is URL-safe base64 without padding, shows none of what it
        carries, differs each time it is sealed, and is compact.
        """
        creds = credentials()
        token = seal(creds, KEYS)
        self.assertRegex(token, r"\A[A-Za-z0-9_-]+\Z")
        self.assertNotEqual(token, seal(creds, KEYS))
        raw = raw_bytes(token)
        for secret in (
            creds.secret_access_key,
            creds.source_identity,
            "ci-artifacts",
            "octo-org",
        ):
            self.assertNotIn(secret, token)
            self.assertNotIn(secret.encode("ascii"), raw)
        self.assertLess(len(token), 1024)

    def test_wire_format(self) -> None:
        """
        A token starts with version 1 and the sealing key id, and is
        AES-256-GCM under that key of the credentials' JSON, with the
        header and the access key id as associated data.
        """
        creds = credentials()
        raw = raw_bytes(seal(creds, KEYS))
        self.assertEqual(raw[:9], b"\x01\x07current")
        plaintext = AESGCM(KEY_A).decrypt(
            raw[9:21], raw[21:], raw[:9] + creds.access_key_id.encode("ascii")
        )
        self.assertEqual(json.loads(plaintext), document(creds))

    def test_hand_sealed(self) -> None:
        """
        A token built by hand to the documented format opens.
        """
        creds = credentials()
        token = hand_sealed(
            KEY_A,
            "current",
            creds.access_key_id,
            json.dumps(document(creds)).encode("utf-8"),
        )
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)

    def test_rotation(self) -> None:
        """
        With a new key first and the old one after, tokens sealed under the
        old key still open, and new tokens are sealed under the new key,
        which the old configuration cannot open.
        """
        old = SessionKeys.from_strings([f"2025:{TEXT_A}"])
        rotated = SessionKeys.from_strings([f"2026:{TEXT_B}", f"2025:{TEXT_A}"])
        creds = credentials()
        before = seal(creds, old)
        self.assertEqual(unseal(before, creds.access_key_id, rotated, NOW), creds)
        after = seal(creds, rotated)
        self.assertEqual(raw_bytes(after)[2:6], b"2026")
        self.assertEqual(unseal(after, creds.access_key_id, rotated, NOW), creds)
        reason = self.assertInvalid(after, creds.access_key_id, old)
        self.assertIn("not configured", reason)
        retired = SessionKeys.from_strings([f"2026:{TEXT_B}"])
        self.assertInvalid(before, creds.access_key_id, retired)

    def test_same_id_other_key(self) -> None:
        """
        A token whose key id names a key configured here, but that was
        sealed under another key of that name, does not open.
        """
        creds = credentials()
        token = seal(creds, SessionKeys([("current", KEY_B)]))
        self.assertInvalid(token, creds.access_key_id, KEYS)

    def test_other_instances(self) -> None:
        """
        Keys built again from the same strings (after a restart, or on
        another instance) open the tokens of the first, with or without
        explicit key ids.
        """
        for strings in ([TEXT_A, TEXT_B], [f"a:{TEXT_A}", f"b:{TEXT_B}"]):
            creds = credentials()
            token = seal(creds, SessionKeys.from_strings(strings))
            elsewhere = SessionKeys.from_strings(list(strings))
            self.assertEqual(unseal(token, creds.access_key_id, elsewhere, NOW), creds)

    def test_other_access_key(self) -> None:
        """
        A token presented with another access key id, even another session's
        genuine one, is C{InvalidToken}.
        """
        creds = credentials()
        other = credentials()
        token = seal(creds, KEYS)
        for access_key_id in (
            other.access_key_id,
            creds.access_key_id.lower(),
            creds.access_key_id + "X",
            "",
            "AKIAIOSFODNN7EXAMPLE",
            "STSPRXY\ud800",
        ):
            self.assertInvalid(token, access_key_id, KEYS)

    def test_sealed_key_id_checked(self) -> None:
        """
        A token that opens with the access key id presented, but whose
        contents name another, is C{InvalidToken}.
        """
        creds = credentials()
        contents = dict(document(creds), k="STSPRXYAAAAAAAAAAAAA")
        token = hand_sealed(
            KEY_A, "current", creds.access_key_id, json.dumps(contents).encode()
        )
        reason = self.assertInvalid(token, creds.access_key_id, KEYS)
        self.assertIn("another access key id", reason)

    def test_every_byte_flipped(self) -> None:
        """
        Changing any bit pattern of any byte of a token makes it
        C{InvalidToken}.
        """
        creds = credentials()
        raw = raw_bytes(seal(creds, KEYS))
        for index in range(len(raw)):
            for mask in (0x01, 0x80, 0xFF):
                changed = bytearray(raw)
                changed[index] ^= mask
                self.assertInvalid(encode(bytes(changed)), creds.access_key_id, KEYS)

    @given(st.data())
    def test_flipped_anywhere(self, data: st.DataObject) -> None:
        """
        Changing any byte of a token, or any character of its text, makes it
        C{InvalidToken}.
        """
        creds = credentials()
        token = seal(creds, KEYS)
        raw = bytearray(raw_bytes(token))
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
        self.assertInvalid(encode(bytes(raw)), creds.access_key_id, KEYS)
        position = data.draw(st.integers(0, len(token) - 1))
        replacement = data.draw(st.characters().filter(lambda c: c != token[position]))
        text = token[:position] + replacement + token[position + 1 :]
        self.assertInvalid(text, creds.access_key_id, KEYS)

    def test_last_character(self) -> None:
        """
        Only the canonical spelling of a token is accepted: changing the
        unused low bits of its last character is C{InvalidToken} too.
        """
        # A token's length depends only on what it carries; of three
        # consecutive lengths, at least two leave unused bits at the end.
        sealed = [
            (creds, seal(creds, KEYS))
            for creds in (mint("r" * n, "s", SCOPES, 900, NOW) for n in (1, 2, 3))
        ]
        creds, token = next((c, t) for c, t in sealed if len(t) % 4 != 0)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        for other in alphabet.replace(token[-1], ""):
            self.assertInvalid(token[:-1] + other, creds.access_key_id, KEYS)

    def test_truncated_or_extended(self) -> None:
        """
        Every prefix of a token, and a token with anything appended, is
        C{InvalidToken}.
        """
        creds = credentials()
        token = seal(creds, KEYS)
        for length in range(len(token)):
            self.assertInvalid(token[:length], creds.access_key_id, KEYS)
        for tail in ("A", "AA", "AAAA", "=", "==", "\n", " ", "."):
            self.assertInvalid(token + tail, creds.access_key_id, KEYS)

    def test_not_base64(self) -> None:
        """
        Empty, non-base64, padded and standard-alphabet tokens are
        C{InvalidToken}.
        """
        creds = credentials()
        tokens = (seal(creds, KEYS) for _ in range(50))
        token = next(t for t in tokens if "-" in t or "_" in t)
        standard = token.replace("-", "+").replace("_", "/")
        for bad in (
            "",
            " ",
            "!!!!",
            "AQ==",
            "A",
            "AQ",
            standard,
            " " + token,
            token[:10] + "\x00" + token[10:],
            token[:10] + "é" + token[10:],
            "\ud800",
        ):
            self.assertInvalid(bad, creds.access_key_id, KEYS)

    def test_huge(self) -> None:
        """
        A token longer than L{MAX_TOKEN_LENGTH} is refused as malformed,
        before any decryption, even when it would open; one exactly that
        long opens.
        """
        creds = credentials()
        body = json.dumps(document(creds)).encode("ascii")
        header = 2 + len("current") + 12 + 16
        fits = (MAX_TOKEN_LENGTH * 3) // 4 - header
        token = hand_sealed(
            KEY_A, "current", creds.access_key_id, body.ljust(fits, b" ")
        )
        self.assertEqual(len(token), MAX_TOKEN_LENGTH)
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)
        for size in (fits + 1, 100_000):
            token = hand_sealed(
                KEY_A, "current", creds.access_key_id, body.ljust(size, b" ")
            )
            self.assertGreater(len(token), MAX_TOKEN_LENGTH)
            reason = self.assertInvalid(token, creds.access_key_id, KEYS)
            self.assertEqual(reason, "malformed")
        self.assertInvalid("A" * (10 * MAX_TOKEN_LENGTH), creds.access_key_id, KEYS)

    def test_too_big_to_seal(self) -> None:
        """
        Credentials whose token would be too long to be accepted are not
        sealed.
        """
        scope = AccessScope(
            bucket="b",
            prefixes=tuple(f"team-{n:04}/projects/" for n in range(1000)),
            actions=frozenset({"get_object"}),
        )
        with self.assertRaises(ValueError) as e:
            seal(credentials(scopes=[scope]), KEYS)
        self.assertIn("too many or too long scopes", str(e.exception))

    def test_version(self) -> None:
        """
        A token of another format version is C{InvalidToken}, even under the
        right key.
        """
        creds = credentials()
        body = json.dumps(document(creds)).encode("ascii")
        for version in (0, 2, 255):
            token = hand_sealed(KEY_A, "current", creds.access_key_id, body, version)
            self.assertInvalid(token, creds.access_key_id, KEYS)

    def test_bad_contents(self) -> None:
        """
        A token that opens but whose contents are not credentials in the
        expected shape is C{InvalidToken}.
        """
        creds = credentials()
        good = document(creds)
        variants: list[bytes] = [
            b"",
            b"not json",
            b"\xff\xfe",
            b"[]",
            b"null",
            json.dumps({k: v for k, v in good.items() if k != "s"}).encode(),
            json.dumps(dict(good, extra=1)).encode(),
            json.dumps(dict(good, e=str(good["e"]))).encode(),
            json.dumps(dict(good, e=True)).encode(),
            json.dumps(dict(good, e=float(good["e"]))).encode(),
            json.dumps(dict(good, e=10**30)).encode(),
            json.dumps(dict(good, i=None)).encode(),
            json.dumps(dict(good, s=None)).encode(),
            json.dumps(dict(good, r=1)).encode(),
            json.dumps(dict(good, c={})).encode(),
            json.dumps(dict(good, c=[["b", [], []], ["b", []]])).encode(),
            json.dumps(dict(good, c=[["b", "p", []]])).encode(),
            json.dumps(dict(good, c=[["b", [1], []]])).encode(),
            json.dumps(dict(good, c=[[None, [], []]])).encode(),
            json.dumps(dict(good, c=[["b", [], [["get_object"]]]])).encode(),
        ]
        for plaintext in variants:
            token = hand_sealed(KEY_A, "current", creds.access_key_id, plaintext)
            reason = self.assertInvalid(token, creds.access_key_id, KEYS)
            self.assertIn("contents", reason)

    def test_same_answer_for_every_cause(self) -> None:
        """
        Malformed, altered, foreign and misused tokens all get the very same
        error for the client; only the reason kept for the log differs.
        """
        creds = credentials()
        token = seal(creds, KEYS)
        foreign = seal(creds, SessionKeys([("elsewhere", KEY_B)]))
        reasons = {
            self.assertInvalid("!", creds.access_key_id, KEYS),
            self.assertInvalid(foreign, creds.access_key_id, KEYS),
            self.assertInvalid(token, credentials().access_key_id, KEYS),
        }
        self.assertEqual(len(reasons), 3)

    def test_expiry_boundary(self) -> None:
        """
        A session is valid until its expiration, exclusive: at that second
        and after, its token is C{ExpiredToken}.
        """
        creds = credentials(duration=900)
        token = seal(creds, KEYS)
        end = NOW + timedelta(seconds=900)
        for now in (NOW, end - timedelta(seconds=1), end - timedelta(microseconds=1)):
            self.assertEqual(unseal(token, creds.access_key_id, KEYS, now), creds)
        for now in (end, end + timedelta(microseconds=1), end + timedelta(days=400)):
            with self.assertRaises(S3Error) as e:
                unseal(token, creds.access_key_id, KEYS, now)
            self.assertNotIsInstance(e.exception, InvalidSessionToken)
            self.assertEqual(e.exception.code, "ExpiredToken")
            self.assertEqual(e.exception.status, 400)
            self.assertEqual(e.exception.message, "The provided token has expired.")

    def test_expired_and_misused(self) -> None:
        """
        An expired token presented with another access key id is
        C{InvalidToken}: whether a token has expired is told only to its
        holder.
        """
        creds = credentials(duration=900)
        token = seal(creds, KEYS)
        with self.assertRaises(InvalidSessionToken):
            unseal(token, credentials().access_key_id, KEYS, NOW + timedelta(days=1))

    def test_many_unicode_prefixes(self) -> None:
        """
        Many scopes with many prefixes, in any script, round-trip, and a
        typical large grant stays well under 4 KiB.
        """
        scopes = [
            AccessScope(
                bucket=f"données-{n}",
                prefixes=tuple(f"équipe-{n}/项目-{m}/" for m in range(10)),
                actions=frozenset(ACTIONS),
            )
            for n in range(3)
        ]
        creds = credentials(scopes=scopes)
        token = seal(creds, KEYS)
        self.assertLess(len(token), 4096)
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)

    @given(
        st.lists(
            st.builds(
                AccessScope,
                bucket=st.text(max_size=20),
                prefixes=st.lists(st.text(max_size=20), max_size=25).map(tuple),
                actions=st.frozensets(st.sampled_from(sorted(ACTIONS))),
            ),
            max_size=2,
        ),
        st.text(max_size=100),
        st.text(max_size=50),
    )
    def test_any_scopes_round_trip(
        self, scopes: list[AccessScope], subject: str, role: str
    ) -> None:
        """
        Any scopes, subject and role round-trip exactly.
        """
        creds = mint(role, subject, scopes, 3600, NOW)
        token = seal(creds, KEYS)
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)

    def test_lone_surrogates_round_trip(self) -> None:
        """
        Strings that are not valid Unicode text (a JSON claim may hold a lone
        surrogate) round-trip too.
        """
        scope = AccessScope(bucket="b", prefixes=("\udc80/",))
        creds = mint("r", "sub-\ud800", [scope], 900, NOW)
        token = seal(creds, KEYS)
        self.assertEqual(unseal(token, creds.access_key_id, KEYS, NOW), creds)


class UnsealErrorTests(SynchronousTestCase):
    """
    Tests for L{InvalidSessionToken}.
    """

    def test_generic(self) -> None:
        """
        The error is S3's C{InvalidToken} with its generic message; the
        reason is kept apart from what is rendered.
        """
        error = InvalidSessionToken("sealed under key id 'x', not configured")
        self.assertEqual(error.code, "InvalidToken")
        self.assertEqual(error.message, GENERIC)
        self.assertNotIn("configured", str(error))
        self.assertNotIn("configured", repr(error))
        self.assertIn("not configured", error.reason)
