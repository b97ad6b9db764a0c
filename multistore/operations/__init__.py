"""
The S3 operations, each carried out for an authenticated, authorized
request against its bucket's store: one table from operation name to
handler (L{multistore.operations.table}), and the handlers grouped by kind
(reads, writes, multipart uploads, buckets).
"""
