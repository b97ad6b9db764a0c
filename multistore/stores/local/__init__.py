# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
The ``file`` store: a bucket served from a directory.

A backend key ``a/b/c`` is the file ``ROOT/a/b/c``. Every file-system call
runs in a thread pool, never on the reactor thread. Nothing outside ``ROOT``
is ever served, listed or written, whatever symbolic links inside it point
to.

The top-level name ``.multistore`` is reserved for the store's own
housekeeping: keys under it are refused and it never shows in listings. Keys
that cannot name a file (an empty segment, a trailing ``/`` that is not a
directory marker) and names that are not UTF-8 do not exist as far as
readers can tell.

A file placed in the directory by hand has no recorded MD5, so its ETag is a
tag derived from its identity and modification time, shaped like a
one-part multipart ETag (``"<32 hex>-1"``) so that clients do not mistake it
for the MD5 of the content.

Writes
======

Which keys can be written
-------------------------

A directory cannot hold every key S3 can. A write is refused with
``400 InvalidArgument``, naming the key and the reason, when the key:

- has an empty segment (``a//b``, a leading ``/``), a ``.`` or ``..``
  segment, or a NUL character;
- has a segment longer than L{MAX_SEGMENT_BYTES} bytes of UTF-8 (the file
  system's limit, less room for the metadata file's suffix);
- lies under ``.multistore/``;
- names a path whose parent is an object: ``a/b`` while ``a`` is a file;
- names an existing directory: ``a`` while ``a/b`` exists;
- leads through a symbolic link to outside ``ROOT``.

A key ending in ``/`` is a directory marker: writing it with an empty body
creates the directory and records the marker, so ``GET dir/`` answers an
empty object and listings show ``dir/`` (and roll it up like any other key
under ``dir/``). A directory marker cannot carry bytes, nor be written by a
multipart upload.

Atomicity
---------

A body is streamed into a temporary file under ``ROOT/.multistore/tmp/``
(the same file system, never listed), its MD5 computed as the bytes pass.
Only once the body has arrived in full and verified does the store commit:
it flushes the file to disk (``fsync``, unless the bucket's ``fsync``
option is false), writes the metadata file beside it, and renames the data
onto the key and the metadata file into place, then flushes the
directories. A reader opens either the old file or the new one, never part
of one; a body that fails, is stopped, or whose client goes away leaves no
object and the old object untouched, and its temporary file is removed.

Every directory on the way to a key is opened by descriptor and checked to
lie inside ``ROOT`` before anything is created in it, and the renames are
made relative to those descriptors, so a symbolic link swapped in meanwhile
cannot redirect a write.

Metadata
--------

What an object carries (content headers, ``Cache-Control``, ``Expires``,
``x-amz-meta-*``, tagging, storage class, checksums, its MD5 ETag, and for
a multipart object the sizes of its parts) is kept in a JSON file under
``ROOT/.multistore/meta/``: the key ``a/b/c`` has ``meta/a.d/b.d/c.json``,
the marker ``a/b/`` has ``meta/a.d/b.d/.json`` (directories there take a
``.d`` suffix so that no key's metadata file can collide with another key's
directory). The file records the inode, size and modification time (in
nanoseconds) of the data file it describes; a metadata file that does not
match its data file (the file was replaced by hand, or a crash fell between
the two renames) is ignored and the object is served as if placed by hand.

Conditional writes
------------------

``If-None-Match: *`` and ``If-Match`` are checked at commit, just before the
rename, under a lock on the key. Stores are made per request, so the locks
live in one registry for the whole process (L{tree._LOCKS}), keyed by the real
path of the key; a lock exists only while held. ``If-Match`` on a key that
does not exist answers ``404 NoSuchKey``, as S3 does.

Multipart uploads
-----------------

An upload is the directory ``ROOT/.multistore/uploads/<upload id>/`` with
``upload.json`` (the key, the object's headers, when it began) and, per
part, ``<n>`` and ``<n>.json`` (its ETag, size and the data file it
describes). Everything is on disk, so uploads survive restarts; upload ids
are random and URL-safe. Completing concatenates the parts into a temporary
file and commits it like a PUT, under a lock on the upload so that a
concurrent abort or part upload cannot interleave.

Files left in ``.multistore/tmp/`` by a crash are never listed nor served;
they may be removed at leisure.
"""

from __future__ import annotations

from multistore.stores.local.files import CHUNK_SIZE, FileBody, OpenFile, ReadableFile
from multistore.stores.local.meta import (
    guess_content_type,
    modification_time,
    object_headers,
    synthetic_etag,
)
from multistore.stores.local.multipart import MIN_PART_SIZE
from multistore.stores.local.store import LocalStore
from multistore.stores.local.tree import (
    MAX_SEGMENT_BYTES,
    RESERVED,
    KeyLocks,
    write_key,
)

__all__ = [
    "CHUNK_SIZE",
    "MAX_SEGMENT_BYTES",
    "MIN_PART_SIZE",
    "RESERVED",
    "FileBody",
    "KeyLocks",
    "LocalStore",
    "OpenFile",
    "ReadableFile",
    "guess_content_type",
    "modification_time",
    "object_headers",
    "synthetic_etag",
    "write_key",
]
