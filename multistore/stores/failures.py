# -*- test-case-name: tests.unit.test_failures -*-
"""
What a client is told when a backend store refuses or fails a request: a
plain S3 error with multistore's own message (a backend's messages name
accounts, buckets and keys), while the backend's own words go to the log.
"""

from __future__ import annotations

from twisted.logger import Logger

from multistore.s3.errors import S3Error


def refused(log: Logger, bucket: str, code: object, detail: object) -> S3Error:
    """
    Log that the backend of ``bucket`` refused the daemon's credentials.

    :param log: the store's logger.
    :param bucket: the virtual bucket.
    :param code: the backend's error code or status.
    :param detail: the backend's message.
    :return: ``AccessDenied``, blaming the backend.
    """
    log.warn(
        "backend of bucket {bucket} refused access ({code}: {detail})",
        bucket=bucket,
        code=code,
        detail=detail,
    )
    return S3Error("AccessDenied", "The bucket's backend store refused access.")


def failed(
    log: Logger,
    bucket: str,
    status: int,
    code: object,
    detail: object,
    *,
    slow_down: bool = False,
) -> S3Error:
    """
    Log that the backend of ``bucket`` failed a request.

    :param log: the store's logger.
    :param bucket: the virtual bucket.
    :param status: the backend's HTTP status.
    :param code: the backend's error code, if any.
    :param detail: the backend's message.
    :param slow_down: whether the backend asked for fewer requests.
    :return: ``SlowDown`` if so, else ``ServiceUnavailable``.
    """
    log.warn(
        "backend of bucket {bucket} failed with {status} {code}: {detail}",
        bucket=bucket,
        status=status,
        code=code,
        detail=detail,
    )
    if slow_down:
        return S3Error("SlowDown")
    return S3Error("ServiceUnavailable", "The bucket's backend store failed.")
