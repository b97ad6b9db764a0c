"""
The write half of L{IObjectStore} for read-only test stores: every write
answers ``501 NotImplemented``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from multistore.headers import HeaderList
from multistore.model import CompletedPart, CopySource, ObjectWrite
from multistore.s3.errors import S3Error


def _refuse() -> NoReturn:
    raise S3Error("NotImplemented", "This store does not accept writes yet.")


class Unwritable:
    """
    Mixed into a store class, answers every write with ``NotImplemented``.
    """

    def put_object(self, write: ObjectWrite) -> NoReturn:
        _refuse()

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> NoReturn:
        _refuse()

    def delete_object(self, key: str, version_id: str | None) -> NoReturn:
        _refuse()

    def delete_objects(self, keys: Sequence[tuple[str, str | None]]) -> NoReturn:
        _refuse()

    def create_multipart_upload(self, key: str, headers: HeaderList) -> NoReturn:
        _refuse()

    def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> NoReturn:
        _refuse()

    def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> NoReturn:
        _refuse()

    def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> NoReturn:
        _refuse()

    def abort_multipart_upload(self, key: str, upload_id: str) -> NoReturn:
        _refuse()

    def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> NoReturn:
        _refuse()

    def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> NoReturn:
        _refuse()

    def create_bucket(self) -> NoReturn:
        _refuse()

    def delete_bucket(self) -> NoReturn:
        _refuse()
