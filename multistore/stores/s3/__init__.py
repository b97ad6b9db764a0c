"""
The S3 store: buckets on any S3-compatible service, and GCS through its
S3-compatible XML API.
"""
