"""
Who is calling and what they may do: SigV4 and SigV2 verification, the
canonical encoding and the signer stores use, sealed STS session tokens,
identities, authorization by scope, the authenticator, and the registries
built from the configuration file. It imports nothing from the web layer,
the gateway, operations or stores.
"""
