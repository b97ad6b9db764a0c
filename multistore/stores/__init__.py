"""
The stores behind virtual buckets, one package per kind (S3, Azure Blob
Storage, Google Cloud Storage, local directories), the streaming toolkit
they share, and the factory that picks one for a bucket. HTTP stores reach
their backends through L{multistore.forwarder}.
"""
