# -*- test-case-name: tests.unit.test_s3_bodies -*-
"""
Upload bodies, decoded and verified as they stream.

The web layer hands the gateway a client's upload as an
L{IBodyProducer}; a store hands a body to the HTTP client or writes it to a
file. The wrappers here sit in between, each an L{IBodyProducer} over
another, acting as that source's consumer:

 - L{VerifyingBody} checks ``x-amz-content-sha256``, ``Content-MD5``, an
   ``x-amz-checksum-*`` header and the length;
 - L{AwsChunkedBody} decodes the ``aws-chunked`` framing and checks its
   chunk signatures, trailer signature and trailing checksum.

Both stream: they hold at most one piece of the source's output (plus a
chunk header of at most L{MAX_LINE} bytes), pass pause, resume and stop on
to the source so that backpressure reaches the client's socket, and
B{withhold the last piece} until the source has finished and everything
verified. A body that fails verification therefore never delivers its last
byte: an S3 backend that was promised ``Content-Length`` bytes never
receives them all and creates no object, and a store that writes a file
sees the failure before it would commit.

That protection needs at least one byte to withhold. A store that is sent
an empty body (``length`` 0) may complete its write before the body has
been read, so a handler should read an empty upload to its end first, for
example with L{collect}, and hand the store an in-memory body;
L{VerifyingBody} itself refuses an empty body whose digests cannot match
when it is made.

The Deferred that C{startProducing} returns fires once: with ``None`` after
the last byte was written to the consumer, or with the failure. As
L{IBodyProducer} demands, it never fires once C{stopProducing} was called;
cancelling it stops the source and fails it with C{CancelledError}.

Failures are L{S3Error}s with the codes S3 uses:

 - the SHA-256 of the body differs from ``x-amz-content-sha256``:
   ``XAmzContentSHA256Mismatch``;
 - ``Content-MD5`` or an ``x-amz-checksum-*`` value differs: ``BadDigest``;
 - a chunk or trailer signature differs: ``SignatureDoesNotMatch``;
 - fewer (or more) bytes than announced: ``IncompleteBody``;
 - ``aws-chunked`` framing that does not parse (a chunk size that is not
   hex, a missing CRLF, a line longer than L{MAX_LINE}, a missing
   ``chunk-signature``, a trailer that was not announced, bytes after the
   end): ``InvalidRequest`` with a message saying what was wrong. S3 has no
   documented code of its own for these.

A failure from the source (the client went away) is passed on unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.auth.canonical import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    chunk_signature,
    chunk_string_to_sign,
    trailer_string_to_sign,
)
from multistore.model import VerifiedSignature
from multistore.s3.checksums import (
    Checksum,
    algorithm_of,
    check_checksum_value,
    check_content_md5,
    digest_mismatch,
    new_checksum,
    new_md5,
)
from multistore.s3.errors import S3Error

#: The longest ``aws-chunked`` chunk header or trailer line accepted, CRLF
#: included. Real ones are under 100 bytes.
MAX_LINE: Final = 4096

#: The ``aws-chunked`` modes, by their ``x-amz-content-sha256`` value.
AWS_CHUNKED_MODES: Final = frozenset(
    {STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER}
)

#: The trailer that carries the trailer signature.
TRAILER_SIGNATURE: Final = "x-amz-trailer-signature"

_CHUNK_SIZE: Final = re.compile(rb"[0-9a-fA-F]{1,16}")


def _malformed(message: str) -> S3Error:
    return S3Error("InvalidRequest", message)


def _incomplete() -> S3Error:
    return S3Error("IncompleteBody")


@implementer(IBodyProducer, IConsumer)
@define
class _Relay:
    """
    The part both wrappers share: a body producer that is its source's
    consumer, passes each piece on one piece late, and releases the last
    piece only once the subclass has verified everything.

    Subclasses implement L{_received} (inspect a piece from the source and
    L{_emit} what the consumer should get) and L{_verify} (called when the
    source has finished; raise L{S3Error} if the body is not right).
    """

    _source: IBodyProducer
    _consumer: IConsumer | None = field(default=None, init=False)
    _done: Deferred[None] | None = field(default=None, init=False)
    _produced: Deferred[None] | None = field(default=None, init=False)
    _held: bytes = field(default=b"", init=False)
    _paused: bool = field(default=False, init=False)
    _started: bool = field(default=False, init=False)
    _finished: bool = field(default=False, init=False)
    _source_done: bool = field(default=False, init=False)

    log = Logger()

    # IBodyProducer, called by whoever sends the body on.

    @property
    def length(self) -> object:
        """
        The source's length, or L{twisted.web.iweb.UNKNOWN_LENGTH}.
        """
        return self._source.length

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Start the source and write what passes to ``consumer``.

        :return: a Deferred that fires with ``None`` once the last byte has
            been written and everything verified, or fails with an
            L{S3Error} (or the source's failure); it never fires once
            L{stopProducing} has been called. Cancelling it stops the
            source.
        :raise RuntimeError: if the body was started before.
        """
        if self._consumer is not None:
            raise RuntimeError("a body can be produced only once")
        self._consumer = consumer
        done: Deferred[None] = Deferred(self._cancel)
        self._done = done
        self._started = True
        produced = self._source.startProducing(self)
        self._produced = produced
        if self._source_done and not produced.called:
            # Stopped while the source was writing inside startProducing.
            produced.cancel()
        if self._paused and not self._finished:
            self._source.pauseProducing()
        produced.addCallbacks(self._source_finished, self._source_failed)
        return done

    def pauseProducing(self) -> None:
        """
        Pause the source.
        """
        self._paused = True
        if self._produced is not None and not self._finished:
            self._source.pauseProducing()

    def resumeProducing(self) -> None:
        """
        Resume the source.
        """
        self._paused = False
        if self._produced is not None and not self._finished:
            self._source.resumeProducing()

    def stopProducing(self) -> None:
        """
        Stop for good: stop the source and drop what is held. The Deferred
        from L{startProducing} will not fire.
        """
        if self._finished:
            return
        self._finished = True
        self._held = b""
        self._stop_source()

    # IConsumer, called by the source.

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Accept the source registering itself; it is already paused, resumed
        and stopped through its L{IBodyProducer} methods.
        """

    def unregisterProducer(self) -> None:
        """
        Accept the source unregistering itself.
        """

    def write(self, data: bytes) -> None:
        """
        Take a piece from the source.
        """
        if self._finished or not data:
            return
        try:
            self._received(data)
        except Exception:
            self._fail(Failure())

    # For subclasses.

    def _received(self, data: bytes) -> None:
        raise NotImplementedError()

    def _verify(self) -> None:
        raise NotImplementedError()

    def _emit(self, piece: bytes) -> None:
        """
        Pass a piece on, one piece late: hold it, and write the one held
        before.
        """
        if not piece or self._finished:
            return
        held, self._held = self._held, piece
        if held:
            assert self._consumer is not None
            self._consumer.write(held)

    # Ending.

    def _source_finished(self, result: None) -> None:
        self._source_done = True
        if self._finished:
            return
        try:
            self._verify()
            held, self._held = self._held, b""
            if held:
                assert self._consumer is not None
                self._consumer.write(held)
        except Exception:
            self._fail(Failure())
            return
        if self._finished:
            # The consumer stopped the body while taking the last piece.
            return
        self._finished = True
        assert self._done is not None
        self._done.callback(None)

    def _source_failed(self, failure: Failure) -> None:
        self._source_done = True
        self._fail(failure)

    def _fail(self, failure: Failure) -> None:
        if self._finished:
            return
        self._finished = True
        self._held = b""
        if isinstance(failure.value, S3Error):
            self.log.info(
                "upload body rejected: {code}: {message}",
                code=failure.value.code,
                message=failure.value.message,
            )
        self._stop_source()
        assert self._done is not None
        self._done.errback(failure)

    def _stop_source(self) -> None:
        if self._source_done or not self._started:
            return
        self._source_done = True
        try:
            self._source.stopProducing()
        except Exception:
            self.log.failure("stopping an upload's source failed")
        # A source that does not honour stopProducing is cancelled as well;
        # whatever its Deferred does now is ignored.
        if self._produced is not None:
            self._produced.cancel()

    def _cancel(self, done: Deferred[None]) -> None:
        if self._finished:
            return
        self._finished = True
        self._held = b""
        self._stop_source()


@define
class VerifyingBody(_Relay):
    """
    Passes an upload through unchanged while checking its digests and
    length.

    :param source: the body.
    :param sha256_hex: ``x-amz-content-sha256`` when it is a hex SHA-256
        (the signed payload hash).
    :param md5_b64: ``Content-MD5``.
    :param checksum: an ``x-amz-checksum-*`` header as ``(algorithm,
        value)``, such as ``("CRC32", "AAAAAA==")``.
    :param expected_length: the number of bytes the body must have; the
        source's length when not given and the source knows it.
    :param max_length: the most bytes it may have (for bodies of unknown
        length); more fail with ``EntityTooLarge`` as soon as they arrive.
    :ivar checksum_verified: whether the ``x-amz-checksum-*`` value given
        can be verified here (``False`` when no library computes its
        algorithm: it is then passed on unverified, for the backend to
        check).
    """

    _sha256_hex: str | None = field(default=None, kw_only=True)
    _md5_b64: str | None = field(default=None, kw_only=True)
    _checksum: tuple[str, str] | None = field(default=None, kw_only=True)
    _expected_length: int | None = field(default=None, kw_only=True)
    _max_length: int | None = field(default=None, kw_only=True)
    checksum_verified: bool = field(default=False, init=False)
    _sha256: hashlib._Hash | None = field(default=None, init=False)
    _md5: Checksum | None = field(default=None, init=False)
    _md5_expected: bytes = field(default=b"", init=False)
    _running: Checksum | None = field(default=None, init=False)
    _checksum_expected: bytes = field(default=b"", init=False)
    _count: int = field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        """
        Check the digests' form, and an empty body's digests at once.

        :raise S3Error: ``InvalidDigest`` for a malformed ``Content-MD5``,
            ``InvalidRequest`` for a malformed checksum, or, when the body is
            known to be empty, the error its verification would give.
        """
        if self._sha256_hex is not None:
            self._sha256 = hashlib.sha256()
        if self._md5_b64 is not None:
            self._md5_expected = check_content_md5(self._md5_b64)
            self._md5 = new_md5()
        if self._checksum is not None:
            algorithm, value = self._checksum
            self._checksum_expected = check_checksum_value(algorithm, value)
            self._running = new_checksum(algorithm)
            self.checksum_verified = self._running is not None
        if self._expected_length is None and isinstance(self._source.length, int):
            self._expected_length = self._source.length
        if self._expected_length == 0:
            self._verify()

    def _received(self, data: bytes) -> None:
        self._count += len(data)
        if self._expected_length is not None and self._count > self._expected_length:
            raise _incomplete()
        if self._max_length is not None and self._count > self._max_length:
            raise S3Error(
                "EntityTooLarge", extra=(("MaxSizeAllowed", str(self._max_length)),)
            )
        if self._sha256 is not None:
            self._sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        if self._running is not None:
            self._running.update(data)
        self._emit(data)

    def _verify(self) -> None:
        if self._expected_length is not None and self._count != self._expected_length:
            raise _incomplete()
        if self._sha256 is not None:
            assert self._sha256_hex is not None
            computed = self._sha256.hexdigest()
            if not hmac.compare_digest(
                computed.encode("ascii"), self._sha256_hex.lower().encode("utf-8")
            ):
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    extra=(
                        ("ClientComputedContentSHA256", self._sha256_hex),
                        ("S3ComputedContentSHA256", computed),
                    ),
                )
        if self._md5 is not None and self._md5.digest() != self._md5_expected:
            raise S3Error("BadDigest")
        if self._running is not None and (
            self._running.digest() != self._checksum_expected
        ):
            raise digest_mismatch(self._running.algorithm)


# The states of the aws-chunked decoder.
_HEADER: Final = "header"
_DATA: Final = "data"
_DATA_END: Final = "data-end"
_TRAILER: Final = "trailer"
_END: Final = "end"


@define
class AwsChunkedBody(_Relay):
    """
    Decodes an ``aws-chunked`` upload, verifying it as it passes.

    The body is ``hex-size[;chunk-signature=sig]`` CRLF, that many bytes,
    CRLF, repeated; then a final ``0[;chunk-signature=sig]`` CRLF; then the
    trailer lines ``name:value`` CRLF (in the trailer modes); then CRLF.
    Its output is the payload alone.

    :param source: the body as received, framing and all.
    :param decoded_length: ``x-amz-decoded-content-length``: the payload's
        size, which must match the chunks' sizes exactly.
    :param mode: ``x-amz-content-sha256``: L{STREAMING_PAYLOAD} (signed
        chunks), L{STREAMING_PAYLOAD_TRAILER} (signed chunks and a signed
        trailer) or L{STREAMING_UNSIGNED_PAYLOAD_TRAILER} (neither).
    :param signature: the request's verified signature; the first chunk's
        signature chains from its seed. Needed by the signed modes.
    :param trailer_names: the trailers announced in ``x-amz-trailer``: a
        sequence of names, or the header's comma-separated value. At most
        one ``x-amz-checksum-*`` is allowed; it is computed over the payload
        and compared with the trailer's value.
    :ivar checksum: once the body has been verified, the trailing checksum
        as ``(algorithm, value)`` (``("CRC32", "AAAAAA==")``), or ``None``
        if the body had none.
    :ivar checksum_verified: whether C{checksum} was checked against the
        payload (``False`` when no library computes its algorithm here: it
        is accepted unverified, for the store to pass on).
    """

    _decoded_length: int = field(kw_only=True)
    _mode: str = field(kw_only=True)
    _signature: VerifiedSignature | None = field(default=None, kw_only=True)
    _trailer_names: Sequence[str] | str = field(default=(), kw_only=True)
    checksum: tuple[str, str] | None = field(default=None, init=False)
    checksum_verified: bool = field(default=False, init=False)
    _signed: bool = field(default=False, init=False)
    _state: str = field(default=_HEADER, init=False)
    _line: bytearray = field(factory=bytearray, init=False)
    _remaining: int = field(default=0, init=False)
    _count: int = field(default=0, init=False)
    _previous: str = field(default="", init=False)
    _chunk_signature: bytes = field(default=b"", init=False)
    _chunk_sha256: hashlib._Hash | None = field(default=None, init=False)
    _expected_trailers: dict[str, str] = field(factory=dict, init=False)
    _trailers: dict[str, str] = field(factory=dict, init=False)
    _trailer_signature: bytes | None = field(default=None, init=False)
    _checksum_algorithm: str | None = field(default=None, init=False)
    _running: Checksum | None = field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        """
        Check the mode and the announced trailers.

        :raise ValueError: for a mode that is not one of
            L{AWS_CHUNKED_MODES}, or a signed mode without a signature.
        :raise S3Error: ``InvalidRequest`` for trailers the mode does not
            allow, or that are not a single known checksum.
        """
        if self._mode not in AWS_CHUNKED_MODES:
            raise ValueError(f"not an aws-chunked mode: {self._mode!r}")
        if self._decoded_length < 0:
            raise ValueError("the decoded length cannot be negative")
        self._signed = self._mode != STREAMING_UNSIGNED_PAYLOAD_TRAILER
        if self._signed:
            if self._signature is None:
                raise ValueError(f"{self._mode} needs the request's signature")
            self._previous = self._signature.seed_signature
        given = self._trailer_names
        if isinstance(given, str):
            given = given.split(",")
        names = [name.strip().lower() for name in given if name.strip()]
        if names and self._mode == STREAMING_PAYLOAD:
            raise _malformed(f"{STREAMING_PAYLOAD} does not allow trailers.")
        for name in names:
            algorithm = algorithm_of(name)
            if algorithm is None:
                raise _malformed(f"The trailer {name} is not supported.")
            if self._checksum_algorithm is not None:
                raise _malformed(
                    "Expecting a single x-amz-checksum- header. "
                    "Multiple checksum Types are not allowed."
                )
            self._checksum_algorithm = algorithm
            self._expected_trailers[name] = algorithm
        if self._checksum_algorithm is not None:
            self._running = new_checksum(self._checksum_algorithm)

    @property
    def length(self) -> int:
        """
        The decoded payload's length (``x-amz-decoded-content-length``).
        """
        return self._decoded_length

    # Decoding.

    def _received(self, data: bytes) -> None:
        position = 0
        end = len(data)
        # The consumer may stop the body while it is being written to.
        while position < end and not self._finished:
            if self._state == _DATA:
                take = min(self._remaining, end - position)
                piece = data[position : position + take]
                position += take
                self._remaining -= take
                self._payload(piece)
                if self._remaining == 0:
                    self._chunk_ended()
                    self._state = _DATA_END
            elif self._state in (_HEADER, _TRAILER, _DATA_END):
                newline = data.find(b"\n", position)
                stop = end if newline < 0 else newline + 1
                if len(self._line) + stop - position > MAX_LINE:
                    raise _malformed("An aws-chunked line is too long.")
                self._line += data[position:stop]
                position = stop
                # The CRLF after a chunk's data need not wait for a newline
                # to be found wrong.
                if self._state == _DATA_END and bytes(self._line[:2]) not in (
                    b"\r",
                    b"\r\n",
                ):
                    raise _malformed("A chunk's data is not followed by CRLF.")
                if newline >= 0:
                    line = bytes(self._line)
                    self._line.clear()
                    self._line_received(line)
            else:
                raise _malformed("The body continues after the aws-chunked end.")

    def _line_received(self, line: bytes) -> None:
        if not line.endswith(b"\r\n"):
            raise _malformed("An aws-chunked line does not end with CRLF.")
        line = line[:-2]
        if self._state == _DATA_END:
            if line:
                raise _malformed("A chunk's data is not followed by CRLF.")
            self._state = _HEADER
        elif self._state == _HEADER:
            self._chunk_header(line)
        else:
            self._trailer_line(line)

    def _chunk_header(self, line: bytes) -> None:
        size_text, _, extensions = line.partition(b";")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise _malformed("An aws-chunked chunk size is not a hex number.")
        size = int(size_text, 16)
        if size > self._decoded_length - self._count:
            raise _incomplete()
        if self._signed:
            self._chunk_signature = self._signature_extension(extensions)
            self._chunk_sha256 = hashlib.sha256()
        if size == 0:
            if self._count != self._decoded_length:
                raise _incomplete()
            self._chunk_ended()
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _signature_extension(self, extensions: bytes) -> bytes:
        name, _, value = extensions.partition(b"=")
        if name.strip() != b"chunk-signature":
            raise _malformed("An aws-chunked chunk has no chunk-signature.")
        return value.strip()

    def _payload(self, piece: bytes) -> None:
        self._count += len(piece)
        if self._chunk_sha256 is not None:
            self._chunk_sha256.update(piece)
        if self._running is not None:
            self._running.update(piece)
        self._emit(piece)

    def _chunk_ended(self) -> None:
        """
        Check the signature of the chunk whose data has just ended.
        """
        if not self._signed:
            return
        assert self._signature is not None and self._chunk_sha256 is not None
        digest = self._chunk_sha256.hexdigest()
        self._chunk_sha256 = None
        expected = chunk_signature(
            self._signature.signing_key,
            chunk_string_to_sign(
                self._signature.amz_date, self._signature.scope, self._previous, digest
            ),
        )
        if not hmac.compare_digest(expected.encode("ascii"), self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch")
        self._previous = expected

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._trailer_ended()
            self._state = _END
            return
        name_bytes, colon, value_bytes = line.partition(b":")
        name = name_bytes.decode("latin-1").strip().lower()
        value = value_bytes.decode("latin-1").strip(" \t")
        if not colon or not name:
            raise _malformed("An aws-chunked trailer line is malformed.")
        if (
            name == TRAILER_SIGNATURE
            and self._mode == STREAMING_PAYLOAD_TRAILER
            and self._trailer_signature is None
        ):
            self._trailer_signature = value.encode("latin-1")
            return
        if (
            name not in self._expected_trailers
            or name in self._trailers
            or self._trailer_signature is not None
        ):
            raise _malformed(f"The trailer {name} was not expected here.")
        self._trailers[name] = value

    def _trailer_ended(self) -> None:
        missing = sorted(set(self._expected_trailers) - set(self._trailers))
        if missing:
            raise _malformed(f"The trailer {missing[0]} is missing.")
        if self._mode == STREAMING_PAYLOAD_TRAILER:
            self._check_trailer_signature()
        for name, value in self._trailers.items():
            algorithm = self._expected_trailers[name]
            expected = check_checksum_value(algorithm, value, trailing=True)
            if self._running is not None and self._running.digest() != expected:
                raise digest_mismatch(algorithm)
            self.checksum = (algorithm, value)
            self.checksum_verified = self._running is not None

    def _check_trailer_signature(self) -> None:
        if self._trailer_signature is None:
            raise _malformed(f"The trailer {TRAILER_SIGNATURE} is missing.")
        assert self._signature is not None
        canonical = "".join(
            f"{name}:{value}\n" for name, value in sorted(self._trailers.items())
        )
        expected = chunk_signature(
            self._signature.signing_key,
            trailer_string_to_sign(
                self._signature.amz_date,
                self._signature.scope,
                self._previous,
                hashlib.sha256(canonical.encode("latin-1")).hexdigest(),
            ),
        )
        if not hmac.compare_digest(expected.encode("ascii"), self._trailer_signature):
            raise S3Error("SignatureDoesNotMatch")

    def _verify(self) -> None:
        if self._state != _END:
            raise _incomplete()
