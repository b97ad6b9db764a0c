"""
The S3 protocol, as pure functions over values: request parsing, errors,
listings, ranges, conditional requests and XML. Nothing here imports Twisted.
"""
