"""
Every interface of multistore, in one module.

A request enters at L{multistore.web}, is parsed by L{multistore.s3},
authenticated against an L{ICredentialRegistry}, resolved and authorized by an
L{IBucketRegistry}, passes each L{IMiddleware}, and reaches an L{IObjectStore}
made by an L{IStoreFactory}; HTTP stores send their requests through an
L{IForwarder}. Bodies move as L{IBody} (out) and
L{twisted.web.iweb.IBodyProducer} (in), always with backpressure.

A deployment replaces any of these by providing the interface: a bucket
registry backed by a database, a middleware that meters, a route handler that
answers STS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from multistore.config import BucketConfig, RoleConfig, StoredCredential
    from multistore.headers import HeaderList
    from multistore.model import (
        BackendRequest,
        BackendResponse,
        BucketEntry,
        CompletedPart,
        CompletedRequest,
        CopyResult,
        CopySource,
        DeleteOutcome,
        DispatchContext,
        Identity,
        IncomingRequest,
        ListPage,
        ListRequest,
        ObjectRead,
        ObjectResponse,
        ObjectWrite,
        Operation,
        PartsPage,
        ResolvedBucket,
        Response,
        UploadsPage,
        UsageEvent,
    )


class IForwarder(Interface):
    """
    The HTTP transport stores use to reach their backends: connection pooling,
    timeouts and streaming, with nothing else added (no decompression, no
    cookies, no redirects).
    """

    def forward(request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Send one request, streaming its body with backpressure.

        :return: a Deferred that fires with the response once its headers have
            arrived, before its body is read. It fails with
            L{multistore.s3.errors.S3Error} ``ServiceUnavailable`` if the
            backend cannot be reached and ``GatewayTimeout`` if it does not
            answer in time. Cancelling it aborts the request.
        """


class IObjectStore(Interface):
    """
    One virtual bucket's store, speaking S3 semantics in backend key space.

    The gateway applies the bucket's backend prefix before calling and strips
    it from what comes back; a store never sees or returns virtual keys.

    Failures are L{multistore.s3.errors.S3Error}s carrying the code a client
    should see; a method that returns a Deferred fails it with them, and
    each method's ``:raise S3Error:`` lists the codes it may carry. Besides
    those, any method of a store on an HTTP service may fail with
    ``AccessDenied`` (the backend refused the gateway's credentials),
    ``ServiceUnavailable`` (the backend cannot be reached, or failed),
    ``SlowDown`` (it asked for fewer requests) and ``GatewayTimeout`` (it
    did not answer in time, see L{IForwarder.forward}); a store on S3 also
    passes on a backend's own code where it is the client's business
    (``InvalidArgument``, ``InvalidRequest``, ``InvalidObjectState``,
    ``MethodNotAllowed``, ``NotImplemented``...). Any method of a directory
    store may fail with ``AccessDenied`` (the file system refused),
    ``NoSuchBucket`` (its directory is gone) and ``InternalError``. A
    backend's message never reaches the client.
    """

    def get_object(read: ObjectRead) -> Deferred[ObjectResponse]:
        """
        Read an object (GET, or HEAD when C{read.head}), honouring its range
        and conditions.

        :return: a 200, 206 or 304 response; 412 and 416 are failures.
        :raise S3Error: ``NoSuchKey``; ``NoSuchVersion`` for a version that
            is not there; ``InvalidArgument`` for a version id the store
            cannot name; ``NoSuchBucket``; ``PreconditionFailed`` when
            ``If-Match`` or ``If-Unmodified-Since`` fails;
            ``InvalidRange`` (with the object's size in ``Content-Range``
            where the store knows it) for a range that selects nothing;
            ``InvalidPartNumber`` for a part the object does not have.
        """

    def list_objects(request: ListRequest) -> Deferred[ListPage]:
        """
        List one page of keys.

        :raise S3Error: ``NoSuchBucket``.
        """

    def head_bucket() -> Deferred[None]:
        """
        Check that the store's bucket (or directory) exists and is reachable.

        :raise S3Error: ``NoSuchBucket``.
        """

    def put_object(write: ObjectWrite) -> Deferred[ObjectResponse]:
        """
        Write an object from a streamed body, atomically: readers see the old
        object or the new one, never part of one, and if the body fails no
        object appears (an S3 backend's request is aborted before its last
        byte; a directory store removes its temporary file).

        ``if-none-match: *`` and ``if-match`` in the headers are honoured
        (``PreconditionFailed``).

        :return: a 200 response whose headers carry the ``etag`` and, where
            the store has them, ``x-amz-version-id`` and checksum headers.
        :raise S3Error: the body's own failure if it fails (a signature or
            digest that does not verify); ``IncompleteBody`` for a body
            that is not as long as it said; ``PreconditionFailed``;
            ``NoSuchKey`` for ``if-match`` where there is no object;
            ``NoSuchBucket``; ``BadDigest`` or ``InvalidDigest`` for a
            ``Content-MD5`` the store checks; ``EntityTooLarge`` for a body
            of unknown length longer than the store can take;
            ``InvalidArgument`` for a key or metadata the store cannot
            hold; ``InvalidStorageClass``, ``InvalidTag``,
            ``InvalidRequest`` (Object Lock) or ``NotImplemented``
            (server-side encryption) for headers a directory store cannot
            honour.
        """

    def can_copy(source: CopySource) -> bool:
        """
        Say whether this store copies from ``source`` itself: whether
        L{copy_object} and L{upload_part_copy} take it.

        The answer is decided from ``source``'s bucket configuration and
        range and the store's own configuration, without asking any
        backend: this neither blocks nor fails. It says what the store can
        do, not whether the copy will succeed (the source may be missing,
        its conditions may fail, the backend may refuse).

        The gateway asks before every CopyObject and UploadPartCopy. When
        the answer is no, it streams the copy itself: it reads the source
        from the source's own store and writes it with L{put_object} or
        L{upload_part}. When the answer is yes, whatever the copy fails
        with, a backend's own ``501 NotImplemented`` included, is the
        client's answer.

        :param source: the source of a copy, in the source store's key
            space; its C{range} is set for a ranged UploadPartCopy.
        :return: C{True} if this store copies from ``source``: on its
            service where it can (a copy within an S3 service, Copy Blob
            within an Azure account, ``rewrite`` within GCS, a file copy
            between directory stores), or by reading the source itself
            where its service copies no such thing (Azure copies no block:
            a part copied within an account is read and written by the
            store); C{False} for a source elsewhere, or reached with other
            credentials, or a range the store's service cannot copy.
        """

    def copy_object(
        source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        Copy an object from ``source``, which L{can_copy} accepts.

        :param key: the destination backend key.
        :param headers: ``x-amz-metadata-directive``, ``x-amz-tagging-directive``
            and, when metadata is replaced, the new object's headers;
            ``if-match`` / ``if-none-match`` for the destination.
        :raise S3Error: ``NoSuchKey`` or ``NoSuchVersion`` for a source that
            is not there; ``PreconditionFailed`` when the source's
            ``x-amz-copy-source-if-*`` or the destination's conditions
            fail; ``InvalidArgument`` for an unknown directive;
            ``InvalidRequest`` for a copy of an object onto itself that
            changes nothing; ``NoSuchBucket``; ``ServiceUnavailable`` for
            a copy the backend did not complete; the failures of
            L{put_object} for the new object's headers;
            ``NotImplemented`` for a source L{can_copy} refuses (a caller
            that asked never sees it) or from the backend itself.
        """

    def delete_object(key: str, version_id: str | None) -> Deferred[ObjectResponse]:
        """
        Delete an object; deleting a key that does not exist succeeds.

        :return: a 204 response (with ``x-amz-version-id`` or
            ``x-amz-delete-marker`` where the store has them).
        :raise S3Error: ``NoSuchVersion`` for a version a store without
            versions does not have; ``InvalidArgument`` for a version id
            the store cannot name or a key it reserves; ``NoSuchBucket``.
        """

    def delete_objects(
        keys: Sequence[tuple[str, str | None]],
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        Delete up to 1000 ``(key, version_id)`` pairs, each independently.

        :return: one outcome per key, in any order; a key that was not
            deleted carries the code L{delete_object} would fail with (or
            ``InternalError`` for a code the backend gave that is not the
            client's business).
        :raise S3Error: ``NoSuchBucket``, and the failures common to every
            method, for the request as a whole.
        """

    def create_multipart_upload(key: str, headers: HeaderList) -> Deferred[str]:
        """
        Start a multipart upload of an object that will carry ``headers``.

        :return: the upload id. It survives restarts of the daemon.
        :raise S3Error: ``NoSuchBucket``; ``InvalidArgument`` for a key the
            store cannot hold or headers too large for its upload ids;
            ``InvalidStorageClass``, ``InvalidTag``, ``InvalidRequest`` or
            ``NotImplemented`` as L{put_object} for headers a directory
            store cannot honour.
        """

    def upload_part(
        write: ObjectWrite, upload_id: str, part_number: int
    ) -> Deferred[ObjectResponse]:
        """
        Store one part from a streamed body (same rules as L{put_object}).

        :return: a 200 response whose headers carry the part's ``etag``.
        :raise S3Error: ``NoSuchUpload`` for an upload that is not there,
            or is another key's; ``MissingContentLength`` for a body of
            unknown length; ``InvalidArgument`` for a part number out of
            range; the body's own failure; ``IncompleteBody``,
            ``BadDigest`` or ``InvalidDigest`` as L{put_object}.
        """

    def upload_part_copy(
        source: CopySource, key: str, upload_id: str, part_number: int
    ) -> Deferred[CopyResult]:
        """
        Store one part copied from ``source`` (its C{range}, or all of it),
        which L{can_copy} accepts.

        :raise S3Error: ``NoSuchUpload``; ``NoSuchKey`` or ``NoSuchVersion``
            for a source that is not there; ``PreconditionFailed`` when the
            source's conditions fail; ``InvalidArgument`` for a malformed
            range or part number; ``InvalidRange`` for a range beyond the
            source; ``MissingContentLength`` where the store reads a
            source of unknown length; ``NotImplemented`` for a source
            L{can_copy} refuses (a caller that asked never sees it) or
            from the backend itself.
        """

    def complete_multipart_upload(
        key: str, upload_id: str, parts: Sequence[CompletedPart], headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        Assemble the object from ``parts`` (in ascending part order), honouring
        ``if-match`` / ``if-none-match`` in ``headers``.

        :return: the object's ETag, time and response headers.
        :raise S3Error: ``NoSuchUpload``; ``MalformedXML`` for no parts;
            ``InvalidPartOrder``; ``InvalidPart`` for a part that was not
            uploaded or whose ETag differs; ``EntityTooSmall`` for a part
            but the last below the minimum size; ``PreconditionFailed``,
            or ``NoSuchKey`` for ``if-match`` where there is no object;
            ``InvalidRequest`` for an upload id that cannot complete an
            upload (an Azure id listed by L{list_multipart_uploads}).
        """

    def abort_multipart_upload(key: str, upload_id: str) -> Deferred[None]:
        """
        Abandon an upload and free its parts.

        :raise S3Error: ``NoSuchUpload``.
        """

    def list_parts(
        key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> Deferred[PartsPage]:
        """
        List an upload's parts above ``part_number_marker``.

        :raise S3Error: ``NoSuchUpload``.
        """

    def list_multipart_uploads(
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        """
        List the uploads in progress under ``prefix`` (backend key space).

        :raise S3Error: ``NoSuchBucket``; ``ServiceUnavailable`` where there
            are more uploads than the store reads for one answer.
        """

    def create_bucket() -> Deferred[None]:
        """
        Create the store's bucket.

        :raise S3Error: ``BucketAlreadyOwnedByYou`` if it exists;
            ``BucketAlreadyExists`` if someone else's does, and
            ``InvalidBucketName``, where the backend says so.
        """

    def delete_bucket() -> Deferred[None]:
        """
        Delete the store's (empty) bucket.

        :raise S3Error: ``BucketNotEmpty`` if it holds objects (or, on
            Azure, uncommitted blocks); ``NoSuchBucket``.
        """


class IStoreFactory(Interface):
    """
    Makes the store for a bucket's configuration.
    """

    def store_for(bucket: BucketConfig) -> IObjectStore:
        """
        :return: a store for ``bucket``, cheaply (this is called per request,
            because middleware may have changed the configuration).
        :raise multistore.s3.errors.S3Error: ``NotImplemented`` for a
            ``backend_type`` this factory cannot serve.
        """


class IBucketRegistry(Interface):
    """
    Where virtual buckets are looked up and authorized.
    """

    owner_id = Attribute("The owner ID shown in ListBuckets.")
    owner_display_name = Attribute("The owner display name shown in ListBuckets.")

    def resolve(
        name: str, identity: Identity, operation: Operation
    ) -> Deferred[ResolvedBucket]:
        """
        Find bucket ``name`` and check that ``identity`` may perform
        ``operation`` on it.

        :return: the bucket; or a failure with ``AccessDenied`` when the
            caller may not, and ``NoSuchBucket`` when it does not exist and
            the caller could have used a bucket of that name. A caller who
            may not use a bucket cannot tell whether it exists.
        """

    def list_buckets(identity: Identity) -> Deferred[Sequence[BucketEntry]]:
        """
        :return: the buckets ``identity`` may use, by name.
        """

    def authorize_keys(
        bucket: ResolvedBucket, identity: Identity, action: str, keys: Sequence[str]
    ) -> Deferred[Sequence[bool]]:
        """
        Decide, for operations that name many keys (the keys of DeleteObjects,
        the entries of a listing, the uploads of ListMultipartUploads),
        whether ``identity`` may perform ``action`` on each of ``keys`` in an
        already-resolved ``bucket``. One call covers a whole request's keys,
        so a registry behind a network service answers them in one exchange.

        :param keys: virtual keys (or common prefixes), in any order, perhaps
            empty.
        :return: a Deferred that fires with one verdict per key, in the order
            of ``keys``. A failure (say, the service is down) fails the
            request; an L{multistore.s3.errors.S3Error} is sent to the client
            as it is, anything else as ``InternalError``.
        """


class ICredentialRegistry(Interface):
    """
    Where access keys and STS roles are looked up.
    """

    def get_credential(access_key_id: str) -> Deferred[StoredCredential | None]:
        """
        :return: the static credential with this key id, or ``None``.
        """

    def get_role(role_id: str) -> Deferred[RoleConfig | None]:
        """
        :return: the role with this id, or ``None``.
        """


#: The rest of the middleware chain, as passed to L{IMiddleware.handle}.
Next = Callable[["DispatchContext"], "Deferred[Response]"]


class IMiddleware(Interface):
    """
    A step around dispatch, after the caller is authenticated and the bucket
    authorized.
    """

    def handle(context: DispatchContext, next: Next) -> Deferred[Response]:
        """
        Handle a request: call ``next`` (perhaps with a changed context, for
        example a bucket configuration with injected backend credentials), or
        answer directly (for example ``SlowDown``).

        :return: the response; a failure with an S3Error is reported as such.
        """

    def after_dispatch(completed: CompletedRequest) -> None:
        """
        Observe a finished request, including ones rejected before dispatch.
        Must not raise; must not block.
        """


class IQuotaChecker(Interface):
    """
    Decides, before bytes move, whether a request may go ahead: request
    rates and transfer quotas. A checker backed by a network service gives
    every call a time budget and answers within it.
    """

    def check_request(context: DispatchContext) -> Deferred[None]:
        """
        Judge a request before it is dispatched: its rate, and the bytes
        its body declares (``Content-Length``) against any transfer quota.
        What it admits, it may hold against the quota until
        L{IUsageRecorder.record} reports what really moved.

        :return: a Deferred that fires with ``None`` to admit, or fails with
            an L{S3Error}: ``SlowDown`` (503) for a rate, ``QuotaExceeded``
            (429) for a quota, each with ``Retry-After``.
        """

    def check_response(context: DispatchContext, size: int) -> Deferred[None]:
        """
        Judge the ``size`` bytes a response is about to send, once the
        store has said how many there are and before any is sent.

        :return: as L{check_request}.
        """


class IUsageRecorder(Interface):
    """
    Records what requests used. Called on the reactor thread once each
    request is over.
    """

    def record(event: UsageEvent) -> None:
        """
        Record one request. Must not block and must not raise: work that
        waits (a file, a network service) is queued or batched.
        """


class IRouteHandler(Interface):
    """
    An endpoint that is not S3 (STS, OIDC discovery, health), consulted before
    S3 parsing.
    """

    def handle(request: IncomingRequest) -> Deferred[Response | None] | None:
        """
        :return: ``None`` to decline (the request goes on to S3), or a
            Deferred that fires with a response, or with ``None`` to decline
            after all.
        """
