"""
Stores behind virtual buckets, and the HTTP forwarder they share.
"""
