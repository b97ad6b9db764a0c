"""
The gateway pipeline, independent of the HTTP server: route handlers,
authentication, S3 parsing, bucket resolution and authorization, the
middleware chain, then dispatch to the S3 operations.
"""
