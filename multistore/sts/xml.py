# -*- test-case-name: tests.unit.test_sts_service -*-
"""
STS documents, as AWS STS writes them, so every SDK parses them: the
``AssumeRoleWithWebIdentity`` and ``GetCallerIdentity`` answers and the
``ErrorResponse``, in the STS namespace with ``ResponseMetadata``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from lxml import etree

from multistore.s3.dates import as_utc
from multistore.s3.xml import root_element
from multistore.sts.policy import StsError, role_id_of

#: The STS XML namespace.
STS_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"

#: The account sessions are said to belong to (multistore has none).
ACCOUNT: Final = "000000000000"


def _element(
    parent: etree._Element, tag: str, text: str | None = None
) -> etree._Element:
    child = etree.SubElement(parent, f"{{{STS_NAMESPACE}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _root(tag: str) -> etree._Element:
    return root_element(tag, STS_NAMESPACE)


def _timestamp(when: datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_name(role_id: str) -> str:
    """
    :return: the role's name as an ARN shows it.
    """
    return role_id_of(role_id).replace(":", "_").replace("/", "_")


def assumed_role_arn(role_id: str, session: str) -> str:
    """
    :return: the ARN of a session of ``role_id``.
    """
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name(role_id)}/{session}"


def assumed_role_id(role_id: str, session: str) -> str:
    """
    :return: a stable id for the role, AWS style (``AROA...``), with the
        session name.
    """
    digest = hashlib.sha256(role_id.encode("utf-8")).hexdigest()[:17].upper()
    return f"AROA{digest}:{session}"


def assume_role_document(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str,
    expiration: datetime,
    role_id: str,
    session: str,
    subject: str,
    audience: str,
    provider: str,
    request_id: str,
) -> bytes:
    """
    :return: the answer to ``AssumeRoleWithWebIdentity``.
    """
    root = _root("AssumeRoleWithWebIdentityResponse")
    result = _element(root, "AssumeRoleWithWebIdentityResult")
    _element(result, "SubjectFromWebIdentityToken", subject)
    _element(result, "Audience", audience)
    user = _element(result, "AssumedRoleUser")
    _element(user, "Arn", assumed_role_arn(role_id, session))
    _element(user, "AssumedRoleId", assumed_role_id(role_id, session))
    credentials = _element(result, "Credentials")
    _element(credentials, "AccessKeyId", access_key_id)
    _element(credentials, "SecretAccessKey", secret_access_key)
    _element(credentials, "SessionToken", session_token)
    _element(credentials, "Expiration", _timestamp(expiration))
    _element(result, "Provider", provider)
    metadata = _element(root, "ResponseMetadata")
    _element(metadata, "RequestId", request_id)
    return _document(root)


def caller_identity_document(arn: str, user_id: str, request_id: str) -> bytes:
    """
    :return: the answer to ``GetCallerIdentity``.
    """
    root = _root("GetCallerIdentityResponse")
    result = _element(root, "GetCallerIdentityResult")
    _element(result, "Arn", arn)
    _element(result, "UserId", user_id)
    _element(result, "Account", ACCOUNT)
    metadata = _element(root, "ResponseMetadata")
    _element(metadata, "RequestId", request_id)
    return _document(root)


def sts_error_document(error: StsError, request_id: str) -> bytes:
    """
    :return: an STS ``ErrorResponse``.
    """
    root = _root("ErrorResponse")
    detail = _element(root, "Error")
    _element(detail, "Type", "Sender" if error.sender else "Receiver")
    _element(detail, "Code", error.code)
    _element(detail, "Message", error.message)
    _element(root, "RequestId", request_id)
    return _document(root)
