"""
Who is calling and what they may do: SigV4 verification and signing,
identities, and authorization by scope. Pure code; nothing here does I/O.
"""
