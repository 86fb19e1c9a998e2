"""What a KMS client does with `cryptography` outside Coffer: verify signatures with the public
key from GetPublicKey, wrap key material for ImportKeyMaterial (as AWS's docs do with OpenSSL).
Tests use these to prove Coffer's output is standard."""
from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

__all__ = ["HASH", "verify_outside", "wrap_import_material"]

HASH = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


def verify_outside(public_der: bytes, alg: str, message: bytes, sig: bytes,
                   digest: bool = False) -> None:
    """Verify a KMS signature with cryptography only (raises InvalidSignature)."""
    pub = serialization.load_der_public_key(public_der)
    if alg == "ED25519_SHA_512":
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify(sig, message)
        return
    h = HASH[alg[-7:]]()
    chosen = utils.Prehashed(h) if digest else h
    if alg.startswith("RSASSA_PSS"):
        pub.verify(sig, message, padding.PSS(padding.MGF1(h), salt_length=h.digest_size), chosen)
    elif alg.startswith("RSASSA_PKCS1"):
        pub.verify(sig, message, padding.PKCS1v15(), chosen)
    else:
        pub.verify(sig, message, ec.ECDSA(chosen))


def wrap_import_material(params: dict, material: bytes, algorithm: str) -> bytes:
    """EncryptedKeyMaterial for ImportKeyMaterial, from GetParametersForImport's answer."""
    pub = serialization.load_der_public_key(params["PublicKey"])
    h = hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return pub.encrypt(material, oaep)
    aes = os.urandom(32)
    return pub.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, material)
