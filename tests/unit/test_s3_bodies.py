"""
Tests for L{multistore.s3.framing}.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field
from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IConsumer
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Request
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.auth.canonical import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    chunk_signature,
    chunk_string_to_sign,
    signing_key,
    trailer_string_to_sign,
)
from multistore.bodies import collect
from multistore.model import CredentialScope, VerifiedSignature
from multistore.s3 import checksums
from multistore.s3.checksums import discover, library_for, md5_b64
from multistore.s3.errors import S3Error
from multistore.s3.framing import MAX_LINE, AwsChunkedBody, VerifyingBody
from multistore.testing import CollectingConsumer, ControlledProducer
from tests.unit.test_s3_checksums import (
    fake_awscrt,
    importer,
    nothing_importable,
    reference_b64,
)

# -- fakes ----------------------------------------------------------------------


@implementer(IBodyProducer)
@define
class EagerSource(ControlledProducer):
    """
    A source that writes everything and finishes inside C{startProducing},
    as an in-memory producer does.
    """

    wire: bytes = b""
    finishes: bool = True

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Write the whole body and (unless told not to) finish.
        """
        done = super().startProducing(consumer)
        self.send(self.wire)
        if self.finishes:
            self.finish()
        return done


@define
class Outcome:
    """
    How a body's Deferred fired: every result it was given, in order.
    """

    results: list[object] = field(factory=list)

    def watch(self, done: Deferred[Any]) -> None:
        """
        Record what ``done`` fires with.
        """

        def record(result: object) -> None:
            self.results.append(result)

        done.addBoth(record)

    @property
    def succeeded(self) -> bool:
        """
        Whether it fired exactly once, with success.
        """
        return len(self.results) == 1 and not isinstance(self.results[0], Failure)

    def error(self, case: SynchronousTestCase) -> S3Error:
        """
        :return: the S3Error it failed with, exactly once.
        """
        case.assertEqual(len(self.results), 1, self.results)
        failure = self.results[0]
        assert isinstance(failure, Failure), failure
        assert isinstance(failure.value, S3Error), failure
        return failure.value


def drive(
    body: IBodyProducer,
    source: ControlledProducer,
    pieces: Sequence[bytes],
    consumer: CollectingConsumer | None = None,
) -> tuple[CollectingConsumer, Outcome]:
    """
    Start ``body``, feed ``pieces`` through ``source`` and end it.
    """
    sink = consumer if consumer is not None else CollectingConsumer()
    outcome = Outcome()
    outcome.watch(body.startProducing(sink))
    source.send(*pieces)
    source.finish()
    return sink, outcome


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """
    Cut ``data`` at the positions in ``cuts``.
    """
    points = sorted({max(0, min(c, len(data))) for c in cuts})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            pieces.append(data[start:point])
        start = point
    return pieces


# -- aws-chunked bodies built for the tests -------------------------------------

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SCOPE = CredentialScope("20130524", "us-east-1", "s3")
KEY = signing_key(SECRET, "20130524", "us-east-1", "s3")

# The seed signatures of AWS's published chunked-upload examples.
EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
TRAILER_EXAMPLE_SEED = (
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
)


def verified(
    seed: str = EXAMPLE_SEED, mode: str = STREAMING_PAYLOAD
) -> VerifiedSignature:
    """
    What verifying the example request's seed signature establishes.
    """
    return VerifiedSignature(
        access_key_id=AKID,
        signing_key=KEY,
        amz_date="20130524T000000Z",
        scope=SCOPE,
        seed_signature=seed,
        payload_hash=mode,
    )


def frame(
    chunks: Sequence[bytes],
    mode: str,
    signature: VerifiedSignature | None = None,
    trailers: Sequence[tuple[str, str]] = (),
) -> tuple[bytes, list[str]]:
    """
    Encode ``chunks`` as an ``aws-chunked`` body, as an SDK would.

    :return: the body, and the chunk signatures and trailer signature in
        order (for the signed modes).
    """
    signed = mode != STREAMING_UNSIGNED_PAYLOAD_TRAILER
    previous = signature.seed_signature if signature is not None else ""
    signatures = []
    out = io.BytesIO()
    for chunk in [*chunks, b""]:
        if signed:
            assert signature is not None
            previous = chunk_signature(
                signature.signing_key,
                chunk_string_to_sign(
                    signature.amz_date,
                    signature.scope,
                    previous,
                    hashlib.sha256(chunk).hexdigest(),
                ),
            )
            signatures.append(previous)
            out.write(b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()))
        else:
            out.write(b"%x\r\n" % len(chunk))
        if chunk:
            out.write(chunk + b"\r\n")
    for name, value in trailers:
        out.write(f"{name}:{value}\r\n".encode())
    if mode == STREAMING_PAYLOAD_TRAILER:
        assert signature is not None
        canonical = "".join(f"{name}:{value}\n" for name, value in sorted(trailers))
        previous = chunk_signature(
            signature.signing_key,
            trailer_string_to_sign(
                signature.amz_date,
                signature.scope,
                previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ),
        )
        signatures.append(previous)
        out.write(f"x-amz-trailer-signature:{previous}\r\n".encode())
    out.write(b"\r\n")
    return out.getvalue(), signatures


def chunked(
    payload: bytes,
    cuts: Sequence[int],
    mode: str,
    checksum: str | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """
    An ``aws-chunked`` body of ``payload`` cut into chunks at ``cuts``, with
    a trailing checksum in the trailer modes.

    :return: the body and the keyword arguments of L{AwsChunkedBody}.
    """
    trailers = []
    names: list[str] = []
    if checksum is not None:
        name = "x-amz-checksum-" + checksum.lower()
        trailers.append((name, reference_b64(checksum, payload)))
        names.append(name)
    signature = (
        None if mode == STREAMING_UNSIGNED_PAYLOAD_TRAILER else verified(mode=mode)
    )
    body, _ = frame(split(payload, cuts), mode, signature, trailers)
    return body, {
        "decoded_length": len(payload),
        "mode": mode,
        "signature": signature,
        "trailer_names": names,
    }


def decode(
    wire: bytes, pieces: Sequence[bytes] | None = None, **arguments: Any
) -> tuple[CollectingConsumer, Outcome, ControlledProducer, AwsChunkedBody]:
    """
    Decode ``wire`` (fed as ``pieces``) with an L{AwsChunkedBody}.
    """
    source = ControlledProducer(len(wire))
    body = AwsChunkedBody(source, **arguments)
    sink, outcome = drive(body, source, [wire] if pieces is None else pieces)
    return sink, outcome, source, body


_MODES = st.sampled_from(
    [STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER]
)


# -- VerifyingBody ----------------------------------------------------------------


class VerifyingBodyTests(SynchronousTestCase):
    """
    Tests for L{VerifyingBody}.
    """

    def test_interface(self) -> None:
        """
        It is an L{IBodyProducer} with its source's length.
        """
        body = VerifyingBody(ControlledProducer(12))
        verifyObject(IBodyProducer, body)
        self.assertEqual(body.length, 12)
        self.assertIs(VerifyingBody(ControlledProducer()).length, UNKNOWN_LENGTH)

    def test_passes_through(self) -> None:
        """
        The bytes pass unchanged; the last piece is held until the source
        has finished, and the Deferred fires after it was written.
        """
        source = ControlledProducer()
        body = VerifyingBody(source, sha256_hex=hashlib.sha256(b"abcdef").hexdigest())
        sink = CollectingConsumer()
        outcome = Outcome()
        outcome.watch(body.startProducing(sink))
        source.send(b"ab", b"cd")
        self.assertEqual(sink.value(), b"ab")
        source.send(b"ef")
        self.assertEqual(sink.value(), b"abcd")
        self.assertEqual(outcome.results, [])
        source.finish()
        self.assertEqual(sink.value(), b"abcdef")
        self.assertTrue(outcome.succeeded)

    def test_sha256_mismatch(self) -> None:
        """
        A body whose SHA-256 is not ``x-amz-content-sha256`` fails with
        ``XAmzContentSHA256Mismatch``, both hashes reported, and its last
        piece is never written.
        """
        claimed = hashlib.sha256(b"other").hexdigest()
        source = ControlledProducer()
        sink, outcome = drive(
            VerifyingBody(source, sha256_hex=claimed), source, [b"abc", b"def"]
        )
        error = outcome.error(self)
        self.assertEqual((error.code, error.status), ("XAmzContentSHA256Mismatch", 400))
        self.assertEqual(
            error.extra,
            (
                ("ClientComputedContentSHA256", claimed),
                ("S3ComputedContentSHA256", hashlib.sha256(b"abcdef").hexdigest()),
            ),
        )
        self.assertEqual(sink.value(), b"abc")

    def test_sha256_upper_case(self) -> None:
        """
        A hash in upper-case hex matches.
        """
        source = ControlledProducer()
        claimed = hashlib.sha256(b"abc").hexdigest().upper()
        _sink, outcome = drive(
            VerifyingBody(source, sha256_hex=claimed), source, [b"abc"]
        )
        self.assertTrue(outcome.succeeded)

    def test_md5(self) -> None:
        """
        A matching ``Content-MD5`` passes; another is ``BadDigest`` and the
        last piece is withheld.
        """
        source = ControlledProducer()
        sink, outcome = drive(
            VerifyingBody(source, md5_b64=md5_b64(b"abcd")), source, [b"ab", b"cd"]
        )
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), b"abcd")
        source = ControlledProducer()
        sink, outcome = drive(
            VerifyingBody(source, md5_b64=md5_b64(b"abce")), source, [b"ab", b"cd"]
        )
        self.assertEqual(outcome.error(self).code, "BadDigest")
        self.assertEqual(sink.value(), b"ab")

    def test_malformed_md5(self) -> None:
        """
        A malformed ``Content-MD5`` is refused at once with ``InvalidDigest``.
        """
        error = self.assertRaises(
            S3Error, VerifyingBody, ControlledProducer(), md5_b64="AAAAAA=="
        )
        self.assertEqual(error.code, "InvalidDigest")

    def test_checksum(self) -> None:
        """
        A matching ``x-amz-checksum-*`` passes; another is ``BadDigest``
        naming the algorithm, and the last piece is withheld.
        """
        for algorithm in ("CRC32", "SHA1", "SHA256"):
            source = ControlledProducer()
            body = VerifyingBody(
                source, checksum=(algorithm, reference_b64(algorithm, b"xyz"))
            )
            self.assertTrue(body.checksum_verified)
            sink, outcome = drive(body, source, [b"x", b"yz"])
            self.assertTrue(outcome.succeeded, algorithm)
            source = ControlledProducer()
            body = VerifyingBody(
                source, checksum=(algorithm, reference_b64(algorithm, b"xyZ"))
            )
            sink, outcome = drive(body, source, [b"x", b"yz"])
            error = outcome.error(self)
            self.assertEqual(
                (error.code, error.message),
                (
                    "BadDigest",
                    f"The {algorithm} you specified did not match the "
                    "calculated checksum.",
                ),
            )
            self.assertEqual(sink.value(), b"x")

    def test_checksum_library(self) -> None:
        """
        CRC32C and CRC64NVME are verified where a library computes them and
        passed on unverified (``checksum_verified`` false) where none does.
        """
        for algorithm in ("CRC32C", "CRC64NVME"):
            for finder, verifiable in (
                (importer(fake_awscrt()), True),
                (nothing_importable, False),
            ):
                self.patch(checksums, "_ENGINES", discover(finder))
                wrong = reference_b64(algorithm, b"other")
                source = ControlledProducer()
                body = VerifyingBody(source, checksum=(algorithm, wrong))
                self.assertEqual(body.checksum_verified, verifiable)
                sink, outcome = drive(body, source, [b"data"])
                if verifiable:
                    self.assertEqual(outcome.error(self).code, "BadDigest")
                else:
                    self.assertTrue(outcome.succeeded)
                    self.assertEqual(sink.value(), b"data")

    def test_malformed_checksum(self) -> None:
        """
        A malformed checksum value is refused at once with
        ``InvalidRequest``.
        """
        error = self.assertRaises(
            S3Error, VerifyingBody, ControlledProducer(), checksum=("crc32", "AAAA")
        )
        self.assertEqual(
            (error.code, error.message),
            ("InvalidRequest", "Value for x-amz-checksum-crc32 header is invalid."),
        )

    def test_short(self) -> None:
        """
        Fewer bytes than expected is ``IncompleteBody``, the last piece
        withheld.
        """
        source = ControlledProducer(10)
        sink, outcome = drive(VerifyingBody(source), source, [b"abc", b"def"])
        self.assertEqual(outcome.error(self).code, "IncompleteBody")
        self.assertEqual(sink.value(), b"abc")

    def test_long(self) -> None:
        """
        More bytes than expected is ``IncompleteBody`` at once; the source is
        stopped and the excess never written.
        """
        source = ControlledProducer()
        sink, outcome = drive(
            VerifyingBody(source, expected_length=4), source, [b"abc", b"def"]
        )
        self.assertEqual(outcome.error(self).code, "IncompleteBody")
        self.assertTrue(source.stopped)
        self.assertEqual(sink.value(), b"")

    def test_empty(self) -> None:
        """
        An empty body whose digests cannot match is refused when the
        wrapper is made, so that a store never starts writing it; one whose
        digests match passes.
        """
        error = self.assertRaises(
            S3Error, VerifyingBody, ControlledProducer(0), md5_b64=md5_b64(b"x")
        )
        self.assertEqual(error.code, "BadDigest")
        error = self.assertRaises(
            S3Error,
            VerifyingBody,
            ControlledProducer(),
            expected_length=0,
            sha256_hex=hashlib.sha256(b"x").hexdigest(),
        )
        self.assertEqual(error.code, "XAmzContentSHA256Mismatch")
        source = ControlledProducer(0)
        body = VerifyingBody(
            source,
            md5_b64=md5_b64(b""),
            sha256_hex=hashlib.sha256(b"").hexdigest(),
            checksum=("CRC32", "AAAAAA=="),
        )
        _sink, outcome = drive(body, source, [])
        self.assertTrue(outcome.succeeded)

    def test_source_fails(self) -> None:
        """
        A failing source (the client left) fails the body with the same
        failure, and the last piece is withheld.
        """
        source = ControlledProducer()
        sink = CollectingConsumer()
        outcome = Outcome()
        outcome.watch(VerifyingBody(source).startProducing(sink))
        source.send(b"abc", b"def")
        reason = ConnectionError("gone")
        source.fail(reason)
        self.assertEqual(sink.value(), b"abc")
        self.assertEqual(len(outcome.results), 1)
        failure = outcome.results[0]
        assert isinstance(failure, Failure)
        self.assertIs(failure.value, reason)

    @settings(deadline=None)
    @given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
    def test_random(self, data: bytes, cuts: list[int]) -> None:
        """
        Any bytes, cut anywhere, pass exactly, with every digest verified.
        """
        source = ControlledProducer(len(data))
        body = VerifyingBody(
            source,
            sha256_hex=hashlib.sha256(data).hexdigest(),
            md5_b64=md5_b64(data),
            checksum=("crc32", reference_b64("CRC32", data)),
        )
        sink, outcome = drive(body, source, split(data, cuts))
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), data)

    def test_http_request_aborted(self) -> None:
        """
        Sent by Twisted's HTTP client with a ``Content-Length``, a body that
        fails verification leaves the request short of its last bytes, and
        the request fails.
        """
        data = b"x" * 1000
        source = ControlledProducer(len(data))
        body = VerifyingBody(source, md5_b64=md5_b64(b"y" * 1000))
        transport = StringTransport()
        outcome = Outcome()
        outcome.watch(
            Request(b"PUT", b"/k", Headers({b"host": [b"store"]}), body).writeTo(
                transport
            )
        )
        source.send(data[:600], data[600:])
        source.finish()
        self.assertEqual(outcome.error(self).code, "BadDigest")
        self.assertIn(b"Content-Length: 1000\r\n", transport.value())
        self.assertTrue(transport.value().endswith(b"\r\n\r\n" + data[:600]))


# -- both wrappers: the producer contract -----------------------------------------


def _wrappers() -> list[
    tuple[str, Callable[[ControlledProducer], IBodyProducer], bytes]
]:
    """
    Each wrapper over a source, with a wire body it accepts (payload
    ``hello world``).
    """
    wire, arguments = chunked(b"hello world", [5], STREAMING_PAYLOAD_TRAILER, "CRC32")
    return [
        ("verifying", lambda source: VerifyingBody(source), b"hello world"),
        ("aws-chunked", lambda source: AwsChunkedBody(source, **arguments), wire),
    ]


class ProducerContractTests(SynchronousTestCase):
    """
    Backpressure, stopping, cancelling and firing once, for both wrappers.
    """

    def test_pause_resume(self) -> None:
        """
        Pausing the body pauses the source; resuming resumes it.
        """
        for name, make, _ in _wrappers():
            source = ControlledProducer()
            body = make(source)
            body.startProducing(CollectingConsumer())
            body.pauseProducing()
            self.assertTrue(source.paused, name)
            body.resumeProducing()
            self.assertFalse(source.paused, name)

    def test_pause_from_write(self) -> None:
        """
        A consumer that pauses while being written to (a full socket buffer)
        pauses the source; the pieces already on their way still arrive.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)
            transport = StringTransport()
            transport.registerProducer(body, True)

            def full(sink: CollectingConsumer, body: IBodyProducer = body) -> None:
                body.pauseProducing()

            sink = CollectingConsumer(on_write=full)
            outcome = Outcome()
            outcome.watch(body.startProducing(sink))
            source.send(*[wire[i : i + 1] for i in range(len(wire))])
            self.assertTrue(source.paused, name)
            body.resumeProducing()
            source.finish()
            self.assertTrue(outcome.succeeded, name)
            self.assertEqual(sink.value(), b"hello world", name)

    def test_paused_before_start(self) -> None:
        """
        A body paused before it was started (a consumer registering it while
        its buffer is full) pauses its source as soon as it starts it.
        """
        for name, make, _ in _wrappers():
            source = ControlledProducer()
            body = make(source)
            body.pauseProducing()
            self.assertFalse(source.paused, name)
            body.startProducing(CollectingConsumer())
            self.assertTrue(source.paused, name)

    def test_stop(self) -> None:
        """
        Stopping the body stops (and cancels) the source, drops what was
        held, and the Deferred never fires, whatever the source does next.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)
            sink = CollectingConsumer()
            outcome = Outcome()
            outcome.watch(body.startProducing(sink))
            source.consumer.write(wire[:-3])  # type: ignore[union-attr]
            written = sink.value()
            body.stopProducing()
            self.assertTrue(source.stopped, name)
            self.assertTrue(source.cancelled, name)
            source.consumer.write(wire[-3:])  # type: ignore[union-attr]
            body.pauseProducing()
            body.stopProducing()
            self.assertEqual(outcome.results, [], name)
            self.assertEqual(sink.value(), written, name)

    def test_cancel(self) -> None:
        """
        Cancelling the Deferred stops the source; the Deferred fails once,
        with C{CancelledError}.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)
            outcome = Outcome()
            done = body.startProducing(CollectingConsumer())
            outcome.watch(done)
            source.send(wire[:4])
            done.cancel()
            self.assertTrue(source.stopped, name)
            self.assertEqual(len(outcome.results), 1, name)
            failure = outcome.results[0]
            assert isinstance(failure, Failure)
            self.assertIsInstance(failure.value, CancelledError)
            source.send(wire[4:])
            self.assertEqual(len(outcome.results), 1, name)

    def test_started_once(self) -> None:
        """
        A body can be started only once.
        """
        for _name, make, _ in _wrappers():
            body = make(ControlledProducer())
            body.startProducing(CollectingConsumer())
            self.assertRaises(RuntimeError, body.startProducing, CollectingConsumer())

    def test_stopped_while_writing_tail(self) -> None:
        """
        A consumer that stops the body while taking its last piece (a
        connection lost at that moment) gets no callback.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)

            def stop(sink: CollectingConsumer, body: IBodyProducer = body) -> None:
                if sink.value().endswith(b"world"):
                    body.stopProducing()

            outcome = Outcome()
            outcome.watch(body.startProducing(CollectingConsumer(on_write=stop)))
            source.send(wire[:-2], wire[-2:])
            source.finish()
            self.assertEqual(outcome.results, [], name)

    def test_consumer_raises(self) -> None:
        """
        A consumer whose write raises fails the body and stops the source.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)

            def explode(sink: CollectingConsumer) -> None:
                raise OSError("disk full")

            outcome = Outcome()
            outcome.watch(body.startProducing(CollectingConsumer(on_write=explode)))
            source.send(*[wire[i : i + 1] for i in range(len(wire))])
            source.finish()
            self.assertEqual(len(outcome.results), 1, name)
            failure = outcome.results[0]
            assert isinstance(failure, Failure)
            self.assertIsInstance(failure.value, OSError)
            self.assertTrue(source.stopped, name)

    def test_fires_once(self) -> None:
        """
        After a failure, nothing the source does fires the Deferred again.
        """
        for name, make, wire in _wrappers():
            source = ControlledProducer()
            body = make(source)
            outcome = Outcome()
            outcome.watch(body.startProducing(CollectingConsumer()))
            source.send(wire)
            source.fail(ConnectionError("gone"))
            body.stopProducing()
            self.assertEqual(len(outcome.results), 1, name)

    def test_synchronous_source(self) -> None:
        """
        A source that writes everything and finishes inside C{startProducing}
        works too.
        """
        for name, make, wire in _wrappers():
            body = make(EagerSource(len(wire), wire=wire))
            sink = CollectingConsumer()
            outcome = Outcome()
            outcome.watch(body.startProducing(sink))
            self.assertTrue(outcome.succeeded, name)
            self.assertEqual(sink.value(), b"hello world", name)

    def test_fails_inside_start(self) -> None:
        """
        A body that fails while its source is writing inside
        C{startProducing} stops and cancels the source all the same.
        """
        source = EagerSource(wire=b"not hex\r\n", finishes=False)
        body = AwsChunkedBody(
            source, decoded_length=3, mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER
        )
        outcome = Outcome()
        outcome.watch(body.startProducing(CollectingConsumer()))
        self.assertEqual(outcome.error(self).code, "InvalidRequest")
        self.assertTrue(source.stopped)
        self.assertTrue(source.cancelled)


# -- AwsChunkedBody -----------------------------------------------------------------


class AwsExampleTests(SynchronousTestCase):
    """
    AWS's published chunked-upload examples, built here from the example's
    keys and date, decode and verify byte for byte.
    """

    def test_signed_chunks(self) -> None:
        """
        The "Transferring Payload in Multiple Chunks" example: a 65 KiB
        object of ``a``s in a 64 KiB and a 1 KiB chunk.
        """
        payload = b"a" * 66560
        wire, signatures = frame(
            [payload[:65536], payload[65536:]], STREAMING_PAYLOAD, verified()
        )
        self.assertEqual(
            signatures,
            [
                "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
            ],
        )
        # The example's Content-Length.
        self.assertEqual(len(wire), 66824)
        self.assertTrue(wire.startswith(b"10000;chunk-signature=ad80c730"))
        cuts = [
            *range(200),
            *range(65500, 65800),
            *range(len(wire) - 300, len(wire)),
        ]
        for cut in cuts:
            sink, outcome, _, body = decode(
                wire,
                [wire[:cut], wire[cut:]],
                decoded_length=66560,
                mode=STREAMING_PAYLOAD,
                signature=verified(),
            )
            self.assertTrue(outcome.succeeded, cut)
            self.assertEqual(sink.value(), payload, cut)
            self.assertIsNone(body.checksum)
        sink, outcome, _, _ = decode(
            wire,
            [wire[i : i + 1] for i in range(len(wire))],
            decoded_length=66560,
            mode=STREAMING_PAYLOAD,
            signature=verified(),
        )
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), payload)

    def _trailer_example(self) -> bytes:
        payload = b"a" * 66560
        wire, signatures = frame(
            [payload[:65536], payload[65536:]],
            STREAMING_PAYLOAD_TRAILER,
            verified(TRAILER_EXAMPLE_SEED, STREAMING_PAYLOAD_TRAILER),
            [("x-amz-checksum-crc32c", "sOO8/Q==")],
        )
        self.assertEqual(
            signatures[2:],
            [
                "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
                "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
            ],
        )
        self.assertTrue(
            wire.endswith(
                b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a9"
                b"9e6e65d5c9f85863f992\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n"
                b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e87306"
                b"29a2e4a59689829ca17fe2e435\r\n\r\n"
            )
        )
        return wire

    def _decode_trailer_example(
        self, wire: bytes, cut: int = 0
    ) -> tuple[CollectingConsumer, Outcome, AwsChunkedBody]:
        sink, outcome, _, body = decode(
            wire,
            [wire[:cut], wire[cut:]],
            decoded_length=66560,
            mode=STREAMING_PAYLOAD_TRAILER,
            signature=verified(TRAILER_EXAMPLE_SEED, STREAMING_PAYLOAD_TRAILER),
            trailer_names="x-amz-checksum-crc32c",
        )
        return sink, outcome, body

    def test_trailer(self) -> None:
        """
        The "Including Trailing Headers" example: the same object, with a
        CRC32C trailer and its signature. Its checksum is verified where a
        CRC32C library is installed, and reported unverified otherwise.
        """
        wire = self._trailer_example()
        for cut in [*range(len(wire) - 250, len(wire)), 0, 100]:
            sink, outcome, body = self._decode_trailer_example(wire, cut)
            self.assertTrue(outcome.succeeded, cut)
            self.assertEqual(sink.value(), b"a" * 66560)
            self.assertEqual(body.checksum, ("CRC32C", "sOO8/Q=="))
            self.assertEqual(body.checksum_verified, library_for("CRC32C") is not None)

    def test_trailer_checksum_verified(self) -> None:
        """
        With a CRC32C library, the example's trailer checksum is verified
        (which checks the published value as well); a wrong one is
        ``BadDigest``.
        """
        self.patch(checksums, "_ENGINES", discover(importer(fake_awscrt())))
        wire = self._trailer_example()
        sink, outcome, body = self._decode_trailer_example(wire)
        self.assertTrue(outcome.succeeded)
        self.assertTrue(body.checksum_verified)
        payload = b"a" * 66560
        wrong, _ = frame(
            [payload],
            STREAMING_PAYLOAD_TRAILER,
            verified(TRAILER_EXAMPLE_SEED, STREAMING_PAYLOAD_TRAILER),
            [("x-amz-checksum-crc32c", "AAAAAA==")],
        )
        sink, outcome, body = self._decode_trailer_example(wrong)
        self.assertEqual(outcome.error(self).code, "BadDigest")
        self.assertEqual(len(sink.value()), 0)

    def test_trailer_checksum_unverifiable(self) -> None:
        """
        Without a CRC32C library, the trailer checksum is accepted
        unverified and reported.
        """
        self.patch(checksums, "_ENGINES", discover(nothing_importable))
        _sink, outcome, body = self._decode_trailer_example(self._trailer_example())
        self.assertTrue(outcome.succeeded)
        self.assertEqual(body.checksum, ("CRC32C", "sOO8/Q=="))
        self.assertFalse(body.checksum_verified)


class BotocoreBodyTests(SynchronousTestCase):
    """
    Bodies built the way botocore builds ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``
    uploads decode and verify.
    """

    def _botocore(
        self, payload: bytes, algorithm: str, chunk_size: int
    ) -> tuple[bytes, str]:
        cls = {
            "CRC32": httpchecksum.Crc32Checksum,
            "SHA1": httpchecksum.Sha1Checksum,
            "SHA256": httpchecksum.Sha256Checksum,
        }[algorithm]
        name = "x-amz-checksum-" + algorithm.lower()
        wrapper = httpchecksum.AwsChunkedWrapper(
            io.BytesIO(payload),
            checksum_cls=cls,
            checksum_name=name,
            chunk_size=chunk_size,
        )
        return wrapper.read(), name

    def test_decode(self) -> None:
        """
        Each algorithm botocore computes itself, over several payload and
        chunk sizes, including the empty payload.
        """
        for algorithm in ("CRC32", "SHA1", "SHA256"):
            for size, chunk_size in ((0, 10), (1, 10), (100, 7), (3000, 1024)):
                payload = bytes(range(256)) * (size // 256) + b"q" * (size % 256)
                wire, name = self._botocore(payload, algorithm, chunk_size)
                sink, outcome, _, body = decode(
                    wire,
                    split(wire, [len(wire) // 3, len(wire) // 2]),
                    decoded_length=len(payload),
                    mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
                    trailer_names=[name],
                )
                self.assertTrue(outcome.succeeded, (algorithm, size))
                self.assertEqual(sink.value(), payload)
                self.assertEqual(
                    body.checksum, (algorithm, reference_b64(algorithm, payload))
                )
                self.assertTrue(body.checksum_verified)

    def test_corrupted(self) -> None:
        """
        A payload byte changed on the way is ``BadDigest``, and the last
        piece of the payload is withheld.
        """
        payload = b"z" * 5000
        wire, name = self._botocore(payload, "CRC32", 1024)
        damaged = wire.replace(b"z" * 10, b"z" * 9 + b"y", 1)
        sink, outcome, _, _ = decode(
            damaged,
            split(damaged, [1000, 4000]),
            decoded_length=len(payload),
            mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
            trailer_names=[name],
        )
        self.assertEqual(outcome.error(self).code, "BadDigest")
        self.assertLess(len(sink.value()), len(payload))


class AwsChunkedBodyTests(SynchronousTestCase):
    """
    Tests for L{AwsChunkedBody}.
    """

    def test_interface(self) -> None:
        """
        It is an L{IBodyProducer} whose length is the decoded length.
        """
        body = AwsChunkedBody(
            ControlledProducer(500),
            decoded_length=300,
            mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
        )
        verifyObject(IBodyProducer, body)
        self.assertEqual(body.length, 300)

    def test_every_split_point(self) -> None:
        """
        In every mode, a body cut in two at any byte, or in three at any
        two, decodes to its payload.
        """
        payload = b"The quick brown fox jumps over the lazy dog."
        for mode in (
            STREAMING_PAYLOAD,
            STREAMING_PAYLOAD_TRAILER,
            STREAMING_UNSIGNED_PAYLOAD_TRAILER,
        ):
            checksum = None if mode == STREAMING_PAYLOAD else "SHA256"
            wire, arguments = chunked(payload, [10, 30], mode, checksum)
            for first in range(len(wire) + 1):
                for second in range(first, len(wire) + 1, 7):
                    sink, outcome, _, _ = decode(
                        wire, split(wire, [first, second]), **arguments
                    )
                    self.assertTrue(outcome.succeeded, (mode, first, second))
                    self.assertEqual(sink.value(), payload)

    @settings(deadline=None)
    @given(
        _MODES,
        st.binary(max_size=1500),
        st.lists(st.integers(0, 1500), max_size=5),
        st.lists(st.integers(0, 2000), max_size=8),
        st.sampled_from(["CRC32", "SHA1", "SHA256"]),
    )
    def test_random(
        self,
        mode: str,
        payload: bytes,
        chunk_cuts: list[int],
        wire_cuts: list[int],
        algorithm: str,
    ) -> None:
        """
        Any payload, in any chunks, with the body cut anywhere, decodes
        exactly and verifies.
        """
        checksum = None if mode == STREAMING_PAYLOAD else algorithm
        wire, arguments = chunked(payload, chunk_cuts, mode, checksum)
        sink, outcome, _, body = decode(wire, split(wire, wire_cuts), **arguments)
        self.assertTrue(outcome.succeeded, outcome.results)
        self.assertEqual(sink.value(), payload)
        if checksum is not None:
            self.assertEqual(
                body.checksum, (checksum, reference_b64(checksum, payload))
            )
            self.assertTrue(body.checksum_verified)

    @settings(deadline=None)
    @given(
        _MODES,
        st.binary(min_size=1, max_size=300),
        st.lists(st.integers(0, 300), max_size=3),
        st.integers(0, 10**6),
        st.integers(1, 255),
        st.lists(st.integers(0, 800), max_size=3),
    )
    def test_damaged(
        self,
        mode: str,
        payload: bytes,
        chunk_cuts: list[int],
        where: int,
        flip: int,
        wire_cuts: list[int],
    ) -> None:
        """
        A body with any byte changed either fails, in which case the
        consumer never got the whole payload, or (a change that means
        nothing, such as the case of a hex digit) still delivers exactly the
        payload.
        """
        checksum = None if mode == STREAMING_PAYLOAD else "CRC32"
        wire, arguments = chunked(payload, chunk_cuts, mode, checksum)
        position = where % len(wire)
        damaged = bytearray(wire)
        damaged[position] ^= flip
        sink, outcome, _source, _ = decode(
            bytes(damaged), split(bytes(damaged), wire_cuts), **arguments
        )
        self.assertEqual(len(outcome.results), 1)
        if outcome.succeeded:
            self.assertEqual(sink.value(), payload)
        else:
            outcome.error(self)
            self.assertLess(len(sink.value()), len(payload))

    def _decode_signed(
        self, wire: bytes, mode: str = STREAMING_PAYLOAD, **extra: Any
    ) -> tuple[CollectingConsumer, Outcome, ControlledProducer]:
        arguments: dict[str, Any] = {
            "decoded_length": 20,
            "mode": mode,
            "signature": verified(mode=mode),
        }
        arguments.update(extra)
        sink, outcome, source, _ = decode(wire, split(wire, [30, 60]), **arguments)
        return sink, outcome, source

    def test_bad_chunk_signature(self) -> None:
        """
        A chunk whose signature does not verify is ``SignatureDoesNotMatch``;
        the source is stopped and the last piece withheld.
        """
        chunks = [b"0123456789", b"abcdefghij"]
        wire, signatures = frame(chunks, STREAMING_PAYLOAD, verified())
        for index in range(3):
            damaged = wire.replace(
                signatures[index].encode(), b"0" * 64 if index else b"f" * 64
            )
            sink, outcome, _source = self._decode_signed(damaged)
            self.assertEqual(outcome.error(self).code, "SignatureDoesNotMatch")
            self.assertLess(len(sink.value()), 20)

    def test_wrong_seed(self) -> None:
        """
        Chunks signed from another request's seed do not verify.
        """
        wire, _ = frame([b"x" * 20], STREAMING_PAYLOAD, verified(seed="ab" * 32))
        sink, outcome, _ = self._decode_signed(wire)
        self.assertEqual(outcome.error(self).code, "SignatureDoesNotMatch")
        self.assertEqual(sink.value(), b"")

    def test_swapped_chunks(self) -> None:
        """
        Chunks in the wrong order do not verify, though each is signed.
        """
        first, _ = frame([b"a" * 10, b"b" * 10], STREAMING_PAYLOAD, verified())
        head_a, rest = first.split(b"\r\n", 1)
        chunk_a, rest = rest.split(b"\r\n", 1)
        head_b, rest = rest.split(b"\r\n", 1)
        chunk_b, rest = rest.split(b"\r\n", 1)
        swapped = b"\r\n".join([head_b, chunk_b, head_a, chunk_a, rest])
        _sink, outcome, _ = self._decode_signed(swapped)
        self.assertEqual(outcome.error(self).code, "SignatureDoesNotMatch")

    def test_bad_trailer_signature(self) -> None:
        """
        A trailer whose signature does not verify (a changed checksum) is
        ``SignatureDoesNotMatch``.
        """
        payload = b"x" * 20
        wire, _ = frame(
            [payload],
            STREAMING_PAYLOAD_TRAILER,
            verified(mode=STREAMING_PAYLOAD_TRAILER),
            [("x-amz-checksum-crc32", reference_b64("CRC32", payload))],
        )
        damaged = wire.replace(reference_b64("CRC32", payload).encode(), b"AAAAAA==", 1)
        sink, outcome, _ = self._decode_signed(
            damaged,
            STREAMING_PAYLOAD_TRAILER,
            trailer_names=["x-amz-checksum-crc32"],
        )
        self.assertEqual(outcome.error(self).code, "SignatureDoesNotMatch")
        self.assertLess(len(sink.value()), 20)

    def test_missing_trailer_signature(self) -> None:
        """
        The signed-trailer mode without a trailer signature is
        ``InvalidRequest``.
        """
        wire, _ = frame(
            [b"x" * 20],
            STREAMING_PAYLOAD,
            verified(mode=STREAMING_PAYLOAD_TRAILER),
            [("x-amz-checksum-crc32", reference_b64("CRC32", b"x" * 20))],
        )
        _sink, outcome, _ = self._decode_signed(
            wire, STREAMING_PAYLOAD_TRAILER, trailer_names=["x-amz-checksum-crc32"]
        )
        error = outcome.error(self)
        self.assertEqual(error.code, "InvalidRequest")
        self.assertIn("x-amz-trailer-signature", error.message)

    def test_missing_chunk_signature(self) -> None:
        """
        A signed mode's chunk without ``chunk-signature`` is
        ``InvalidRequest``.
        """
        wire, _ = frame([b"x" * 20], STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        sink, outcome, _ = self._decode_signed(wire)
        self.assertEqual(outcome.error(self).code, "InvalidRequest")
        self.assertEqual(sink.value(), b"")

    def _unsigned(
        self, wire: bytes, decoded_length: int, names: Sequence[str] = ()
    ) -> tuple[CollectingConsumer, Outcome, ControlledProducer, AwsChunkedBody]:
        return decode(
            wire,
            [wire],
            decoded_length=decoded_length,
            mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
            trailer_names=names,
        )

    def test_decoded_length_short(self) -> None:
        """
        Chunks adding up to less than ``x-amz-decoded-content-length`` are
        ``IncompleteBody``.
        """
        wire, _ = frame([b"abc"], STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        sink, outcome, _, _ = self._unsigned(wire, 4)
        self.assertEqual(outcome.error(self).code, "IncompleteBody")
        self.assertEqual(sink.value(), b"")

    def test_decoded_length_long(self) -> None:
        """
        A chunk that would go past ``x-amz-decoded-content-length`` is
        ``IncompleteBody`` as soon as its size is read; the source is
        stopped.
        """
        wire, _ = frame([b"ab", b"cdef"], STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        sink, outcome, source, _ = self._unsigned(wire, 4)
        self.assertEqual(outcome.error(self).code, "IncompleteBody")
        self.assertTrue(source.stopped)
        self.assertEqual(sink.value(), b"")

    def test_truncated(self) -> None:
        """
        A body that ends before its framing does is ``IncompleteBody``, the
        last piece withheld.
        """
        wire, _ = frame([b"abc", b"def"], STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        for end in range(len(wire)):
            sink, outcome, _, _ = decode(
                wire[:end],
                split(wire[:end], [5]),
                decoded_length=6,
                mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
            )
            self.assertEqual(outcome.error(self).code, "IncompleteBody", end)
            self.assertLess(len(sink.value()), 6)

    def test_malformed(self) -> None:
        """
        Framing that does not parse is ``InvalidRequest``.
        """
        for wire in (
            b"x\r\nabc\r\n0\r\n\r\n",  # size not hex
            b"\r\nabc\r\n0\r\n\r\n",  # no size
            b"3 \r\nabc\r\n0\r\n\r\n",  # space after the size
            b"3\nabc\r\n0\r\n\r\n",  # bare LF
            b"3\r\nabcX\r\n0\r\n\r\n",  # data longer than its size
            b"3\r\nabc\n0\r\n\r\n",  # no CR after the data
            b"3\r\nabc\r\n0\r\n\r\nextra",  # bytes after the end
            b"3\r\nabc\r\n0\r\n\r\n\r\n",  # an extra CRLF
            b"3\r\nabc\r\n0\r\nno colon\r\n\r\n",  # a malformed trailer
            b"3\r\nabc\r\n0\r\nx-amz-meta-a:b\r\n\r\n",  # a trailer not announced
            b"00000000000000003\r\nabc\r\n0\r\n\r\n",  # 17 hex digits
        ):
            sink, outcome, _, _ = self._unsigned(wire, 3)
            self.assertEqual(outcome.error(self).code, "InvalidRequest", wire)
            self.assertEqual(sink.value(), b"", wire)

    def test_lenient_framing(self) -> None:
        """
        Upper-case hex, leading zeros and (unsigned) chunk extensions are
        accepted.
        """
        sink, outcome, _, _ = self._unsigned(
            b"000A;foo=bar\r\n0123456789\r\n0\r\n\r\n", 10
        )
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), b"0123456789")

    def test_long_line(self) -> None:
        """
        A chunk header longer than L{MAX_LINE} is refused without being
        held whole.
        """
        source = ControlledProducer()
        body = AwsChunkedBody(
            source, decoded_length=3, mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER
        )
        outcome = Outcome()
        outcome.watch(body.startProducing(CollectingConsumer()))
        source.send(b"3;" + b"x" * (MAX_LINE - 10))
        self.assertEqual(outcome.results, [])
        source.send(b"x" * 20)
        self.assertEqual(outcome.error(self).code, "InvalidRequest")
        self.assertTrue(source.stopped)

    def test_trailers(self) -> None:
        """
        Announced trailers must arrive, once each; a malformed value is
        ``InvalidRequest`` naming the trailer.
        """
        name = "x-amz-checksum-crc32"
        good = reference_b64("CRC32", b"abc")
        cases = [
            (b"", "The trailer x-amz-checksum-crc32 is missing."),
            (
                f"{name}:{good}\r\n{name}:{good}\r\n".encode(),
                "The trailer x-amz-checksum-crc32 was not expected here.",
            ),
            (
                f"{name}:AAAA\r\n".encode(),
                "Value for x-amz-checksum-crc32 trailing header is invalid.",
            ),
        ]
        for trailer, message in cases:
            wire = b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n"
            _, outcome, _, _ = self._unsigned(wire, 3, [name])
            error = outcome.error(self)
            self.assertEqual((error.code, error.message), ("InvalidRequest", message))
        wire = b"3\r\nabc\r\n0\r\nX-Amz-Checksum-CRC32 : " + good.encode() + b"\r\n\r\n"
        _sink, outcome, _, body = self._unsigned(wire, 3, [name.upper()])
        self.assertTrue(outcome.succeeded)
        self.assertEqual(body.checksum, ("CRC32", good))

    def test_trailer_mismatch(self) -> None:
        """
        A trailing checksum that does not match is ``BadDigest`` naming the
        algorithm.
        """
        name = "x-amz-checksum-sha1"
        wire = (
            b"3\r\nabc\r\n0\r\n"
            + f"{name}:{reference_b64('SHA1', b'abd')}\r\n\r\n".encode()
        )
        sink, outcome, _, _ = self._unsigned(wire, 3, [name])
        error = outcome.error(self)
        self.assertEqual(
            (error.code, error.message),
            (
                "BadDigest",
                "The SHA1 you specified did not match the calculated checksum.",
            ),
        )
        self.assertEqual(sink.value(), b"")

    def test_unverifiable_trailer(self) -> None:
        """
        A CRC64NVME trailer is verified with a library and accepted
        unverified without one; its form is checked either way.
        """
        name = "x-amz-checksum-crc64nvme"
        value = reference_b64("CRC64NVME", b"abc")
        wire = b"3\r\nabc\r\n0\r\n" + f"{name}:{value}\r\n\r\n".encode()
        for finder, verifiable in (
            (importer(fake_awscrt()), True),
            (nothing_importable, False),
        ):
            self.patch(checksums, "_ENGINES", discover(finder))
            _, outcome, _, body = self._unsigned(wire, 3, [name])
            self.assertTrue(outcome.succeeded)
            self.assertEqual(body.checksum, ("CRC64NVME", value))
            self.assertEqual(body.checksum_verified, verifiable)
            wrong = wire.replace(value.encode(), b"AAAAAA==")
            _sink, outcome, _, body = self._unsigned(wrong, 3, [name])
            self.assertEqual(outcome.error(self).code, "InvalidRequest")

    def test_no_trailer(self) -> None:
        """
        The unsigned-trailer mode without any trailer is accepted.
        """
        _sink, outcome, _, body = self._unsigned(b"3\r\nabc\r\n0\r\n\r\n", 3)
        self.assertTrue(outcome.succeeded)
        self.assertIsNone(body.checksum)

    def test_construction(self) -> None:
        """
        Modes, signatures and announced trailers are checked when the body
        is made.
        """
        source = ControlledProducer()
        self.assertRaises(
            ValueError,
            AwsChunkedBody,
            source,
            decoded_length=1,
            mode="UNSIGNED-PAYLOAD",
        )
        self.assertRaises(
            ValueError, AwsChunkedBody, source, decoded_length=1, mode=STREAMING_PAYLOAD
        )
        for mode, names in (
            (STREAMING_PAYLOAD, ["x-amz-checksum-crc32"]),
            (STREAMING_UNSIGNED_PAYLOAD_TRAILER, ["x-amz-meta-a"]),
            (STREAMING_UNSIGNED_PAYLOAD_TRAILER, ["x-amz-checksum-md5"]),
            (
                STREAMING_UNSIGNED_PAYLOAD_TRAILER,
                "x-amz-checksum-crc32, x-amz-checksum-sha1",
            ),
        ):
            error = self.assertRaises(
                S3Error,
                AwsChunkedBody,
                source,
                decoded_length=1,
                mode=mode,
                signature=verified(mode=mode),
                trailer_names=names,
            )
            self.assertEqual(error.code, "InvalidRequest")

    def test_empty_payload(self) -> None:
        """
        An empty payload decodes to nothing, its signatures verified.
        """
        wire, arguments = chunked(b"", [], STREAMING_PAYLOAD_TRAILER, "CRC32")
        sink, outcome, _, body = decode(wire, **arguments)
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), b"")
        self.assertEqual(body.checksum, ("CRC32", "AAAAAA=="))

    def test_verifying_chained(self) -> None:
        """
        A L{VerifyingBody} over an L{AwsChunkedBody} checks a checksum
        header over the decoded payload; both hold their last piece.
        """
        payload = b"0123456789" * 3
        wire, arguments = chunked(payload, [10, 20], STREAMING_PAYLOAD)
        source = ControlledProducer(len(wire))
        body = VerifyingBody(
            AwsChunkedBody(source, **arguments),
            checksum=("SHA256", reference_b64("SHA256", payload)),
        )
        self.assertEqual(body.length, 30)
        sink, outcome = drive(body, source, split(wire, [50, 150, 200]))
        self.assertTrue(outcome.succeeded)
        self.assertEqual(sink.value(), payload)
        source = ControlledProducer(len(wire))
        body = VerifyingBody(
            AwsChunkedBody(source, **arguments),
            checksum=("SHA256", reference_b64("SHA256", b"other")),
        )
        sink, outcome = drive(body, source, split(wire, [50, 150, 200]))
        self.assertEqual(outcome.error(self).code, "BadDigest")
        self.assertLess(len(sink.value()), 30)


# -- collect ------------------------------------------------------------------------


class CollectTests(SynchronousTestCase):
    """
    Tests for L{collect}.
    """

    def test_collects(self) -> None:
        """
        The whole body is gathered once it has been verified.
        """
        source = ControlledProducer()
        done = collect(VerifyingBody(source, md5_b64=md5_b64(b"abc")), 10)
        source.send(b"a", b"bc")
        self.assertNoResult(done)
        source.finish()
        self.assertEqual(self.successResultOf(done), b"abc")

    def test_empty_aws_chunked(self) -> None:
        """
        An empty aws-chunked payload is verified in full before anything is
        decided; a bad signature fails it.
        """
        wire, arguments = chunked(b"", [], STREAMING_PAYLOAD)
        source = ControlledProducer(len(wire))
        done = collect(AwsChunkedBody(source, **arguments), 0)
        source.send(wire)
        source.finish()
        self.assertEqual(self.successResultOf(done), b"")
        source = ControlledProducer(len(wire))
        done = collect(AwsChunkedBody(source, **arguments), 0)
        source.send(wire.replace(b"chunk-signature=", b"chunk-signature=0"))
        self.assertEqual(
            self.failureResultOf(done, S3Error).value.code, "SignatureDoesNotMatch"
        )

    def test_too_long(self) -> None:
        """
        A body longer than the limit fails with ``MaxMessageLengthExceeded``
        and is stopped; one whose length says so is not even started.
        """
        source = ControlledProducer()
        done = collect(VerifyingBody(source), 4)
        source.send(b"abc", b"def", b"g")
        self.assertEqual(
            self.failureResultOf(done, S3Error).value.code, "MaxMessageLengthExceeded"
        )
        self.assertTrue(source.stopped)
        source = ControlledProducer(5)
        done = collect(VerifyingBody(source), 4)
        self.failureResultOf(done, S3Error)
        self.assertIsNone(source.consumer)

    def test_failure(self) -> None:
        """
        A body that fails fails the collection.
        """
        source = ControlledProducer()
        done = collect(VerifyingBody(source, expected_length=9), 10)
        source.send(b"abc")
        source.finish()
        self.assertEqual(
            self.failureResultOf(done, S3Error).value.code, "IncompleteBody"
        )

    def test_cancel(self) -> None:
        """
        Cancelling the collection stops the body.
        """
        source = ControlledProducer()
        done = collect(VerifyingBody(source), 10)
        done.cancel()
        self.failureResultOf(done, CancelledError)
        self.assertTrue(source.stopped)
