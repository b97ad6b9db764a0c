# -*- test-case-name: tests.unit.test_s3_errors -*-
"""
S3 errors: the codes multistore answers with, their HTTP statuses, and the
exception that carries one through the pipeline.

Every failure a client sees is an L{S3Error}; the web layer renders it as S3
error XML (see L{multistore.s3.xml.error_document}).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# code -> (HTTP status, default message).  Statuses are the ones AWS S3 uses.
_CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (
        400,
        "The authorization header is malformed.",
    ),
    "AuthorizationQueryParametersError": (
        400,
        "The query parameters that provide authentication are malformed.",
    ),
    "BackendAuthenticationFailed": (
        502,
        "The gateway could not obtain credentials for the backend store.",
    ),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "EntityTooLarge": (
        400,
        "Your proposed upload exceeds the maximum allowed object size.",
    ),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "ExpiredToken": (400, "The provided token has expired."),
    "GatewayTimeout": (504, "The backend store did not answer in time."),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidObjectState": (
        403,
        "The operation is not valid for the current state of the object.",
    ),
    "InvalidPart": (400, "One or more of the specified parts could not be found."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    ),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "MethodNotAllowed": (
        405,
        "The specified method is not allowed against this resource.",
    ),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (
        404,
        "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.",
    ),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotImplemented": (
        501,
        "A header or query you provided implies functionality that is not implemented.",
    ),
    "PreconditionFailed": (
        412,
        "At least one of the pre-conditions you specified did not hold",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    "QuotaExceeded": (429, "You have used up your transfer quota for now."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    ),
    "SlowDown": (503, "Please reduce your request rate."),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
}

#: Every error code multistore can answer with, mapped to its HTTP status.
STATUS_OF: Mapping[str, int] = MappingProxyType(
    {code: status for code, (status, _) in _CODES.items()}
)


class S3Error(Exception):
    """
    A failure to report to the client as an S3 error.

    :ivar code: the S3 error code, a key of L{STATUS_OF}.
    :ivar message: the human-readable ``Message``.
    :ivar status: the HTTP status.
    :ivar resource: the ``Resource`` to report, or ``None`` for the request
        path.
    :ivar extra: further child elements of ``<Error>``, in order (AWS adds,
        for example, ``Key``, ``BucketName`` or ``StringToSign``).
    :ivar headers: extra response headers (for example ``Content-Range`` on
        ``InvalidRange``).
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        resource: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        default_status, default_message = _CODES.get(code, (500, code))
        self.code = code
        self.message = message if message is not None else default_message
        self.status = status if status is not None else default_status
        self.resource = resource
        self.extra = extra
        self.headers = headers
        super().__init__(code, self.message)

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, status={self.status})"
