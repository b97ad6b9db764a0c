"""
The S3 protocol: request parsing, keys, errors, listings, ranges, conditional
requests, checksums, the framing and verification of upload bodies, and XML.
Pure code over values; it imports nothing from the web layer, the gateway,
operations or stores (Twisted appears only as the producer and consumer
interfaces upload bodies stream through).
"""
