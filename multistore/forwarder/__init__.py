"""
The HTTP forwarder HTTP stores send their backend requests through: one
C{Agent} over a persistent connection pool, bodies streamed both ways with
backpressure, nothing added (no decompression, no cookies, no redirects).
"""
