# -*- test-case-name: tests.unit.test_oidc -*-
"""
The OIDC provider's keys: loading a private key, the algorithm it signs
with, and its public half as a JSON Web Key.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

#: The smallest RSA key accepted, in bits.
MIN_RSA_BITS = 2048


@frozen
class LoadedKey:
    """
    A signing key, ready to sign.

    :ivar id: its key id.
    :ivar algorithm: ``RS256`` or ``ES256``.
    :ivar private: the private key.
    """

    id: str
    algorithm: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        """
        :return: the public key as a JSON Web Key, with ``kid``, ``alg``
            and ``use``.
        """
        public = self.private.public_key()
        if self.algorithm == "RS256":
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        jwk.update(kid=self.id, alg=self.algorithm, use="sig")
        return dict(jwk)


def load_key(key_id: str, pem: str) -> LoadedKey:
    """
    Load a PKCS#8 (or traditional) PEM private key.

    :raise ValueError: saying why, if it is not an RSA key of at least
        2048 bits or a P-256 key, or not a key at all.
    """
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"not a PEM private key without a passphrase ({error})"
        ) from None
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key must have at least {MIN_RSA_BITS} bits")
        return LoadedKey(key_id, "RS256", private)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        if not isinstance(private.curve, ec.SECP256R1):
            raise ValueError("an EC key must be on P-256 (for ES256)")
        return LoadedKey(key_id, "ES256", private)
    raise ValueError("must be an RSA (RS256) or P-256 (ES256) private key")
