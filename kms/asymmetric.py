"""Asymmetric (RSA, ECC) and HMAC key operations: Sign/Verify, GetPublicKey, GenerateMac /
VerifyMac, DeriveSharedSecret, GenerateDataKeyPair(+WithoutPlaintext), GenerateRandom, and RSA
Encrypt/Decrypt (reached from ``KMS.encrypt`` / ``KMS.decrypt``). Mixed into
``kms.service.KMS``; uses its plumbing (``_call``, ``_resolve``, ``_require_usable``, ``_seal``,
``_store``, ``_backend``, ``_rand``).

Key material: one version per key (these keys do not rotate: RotateKeyOnDemand answers
UnsupportedOperationException). The version's record is the PKCS#8 DER private key, or the HMAC
key bytes, wrapped by the root key through the backend's ``wrap_private`` (see
``kms.backends.software``); nothing unwrapped reaches the store.

Wire shapes follow the AWS API reference: RSA ciphertexts are the raw RSAES-OAEP output (no
Coffer header), so Decrypt of one needs ``KeyId`` and the ``EncryptionAlgorithm``; signatures
are what AWS returns (PKCS #1 / PSS octets, DER ECDSA, 64-byte Ed25519); public keys are DER
SubjectPublicKeyInfo. Asymmetric and HMAC keys take no encryption context (kms-contract.md,
"Encryption context"). Audit records carry key ids and algorithm names, never messages, MACs,
signatures, peer keys, plaintexts or private keys.

Not offered: ED25519_PH_SHA_512 (cryptography has no Ed25519ph), SM2, ML-DSA, ``Recipient``
(Nitro Enclaves attestation) and custom key stores.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kms import context as ec
from kms import params as P
from kms.backends import MaterialRef
from kms.crypto import asym
from kms.crypto.aead import CryptoError
from kms.errors import (DisabledException,
                        InvalidCiphertextException, InvalidKeyUsageException,
                        KMSInternalException, KMSInvalidMacException,
                        KMSInvalidSignatureException, KMSInvalidStateException,
                        UnsupportedOperationException, ValidationException)
from kms.model import Caller, Key, KeySpec, KeyState, KeyUsage, key_algorithms

__all__ = ["AsymmetricOps", "MAX_MESSAGE", "MAX_SIGNATURE", "MAX_RANDOM"]

MAX_MESSAGE = 4096          # Sign/Verify/GenerateMac Message: 1..4096 (botocore model)
MAX_SIGNATURE = 6144        # Verify Signature, VerifyMac Mac: 1..6144
MAX_PUBLIC_KEY = 8192       # DeriveSharedSecret PublicKey: 1..8192
MAX_RSA_CIPHERTEXT = 6144
MAX_RANDOM = 1024           # GenerateRandom NumberOfBytes: 1..1024

_UNSUPPORTED_SPECS = frozenset({KeySpec.SM2, KeySpec.ML_DSA_44, KeySpec.ML_DSA_65,
                                KeySpec.ML_DSA_87})
_SIGNING_ALGORITHMS = sorted(asym.SIGNING_HASH) + ["ED25519_PH_SHA_512", "SM2DSA",
                                                   "ML_DSA_SHAKE_256"]
_MESSAGE_TYPES = ("RAW", "DIGEST", "EXTERNAL_MU")
_ENCRYPTION_ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                          "SM2PKE")
_KEY_PAIR_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
                   "ECC_NIST_P521", "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519")
_STATE_PHRASE = {
    KeyState.PENDING_DELETION: "is pending deletion.",
    KeyState.PENDING_REPLICA_DELETION: "is pending replica deletion.",
    KeyState.PENDING_IMPORT: "is pending import.",
    KeyState.UNAVAILABLE: "is unavailable.",
    KeyState.CREATING: "is creating.",
    KeyState.UPDATING: "is updating.",
}


def _enum(value: object, allowed: Sequence[str], param: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{param}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {list(allowed)}")
    return value


def _bytes(value: object, param: str, limit: int) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValidationException(f"1 validation error detected: Value at '{param}' must be a "
                                  "blob")
    data = bytes(value)
    if len(data) < 1:
        raise P.length_error(param, "greater than or equal to", 1)
    if len(data) > limit:
        raise P.length_error(param, "less than or equal to", limit)
    return data


class AsymmetricOps:
    """AWS operations on RSA, ECC and HMAC keys (mixin of ``kms.service.KMS``)."""

    # -- hooks used by kms.service -------------------------------------------------------------

    @staticmethod
    def _check_key_spec(spec: KeySpec, usage: KeyUsage) -> None:
        """CreateKey: the KeySpec/KeyUsage pairs AWS accepts (CreateKey doc, KeyUsage)."""
        if spec in _UNSUPPORTED_SPECS:
            raise UnsupportedOperationException(f"KeySpec {spec} is not supported.")
        if not key_algorithms(spec, usage):
            raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")

    def _new_material(self, arn: str, version: int, spec: KeySpec) -> bytes:
        """The backend record of a new key version of ``spec``."""
        if spec is KeySpec.SYMMETRIC_DEFAULT:
            return self._backend.generate(arn, version)
        wrap = getattr(self._backend, "wrap_private", None)
        if wrap is None:
            raise UnsupportedOperationException(
                f"The {self._backend.name} key backend cannot hold {spec} keys.")
        if spec in asym.HMAC_SPECS:
            material = self._rand(asym.HMAC_SPECS[spec])
        else:
            material = asym.generate_private(spec.value)
        return wrap(arn, version, material)

    def _encrypt_asymmetric(self, key: Key, plaintext: bytes, context: Mapping[str, str],
                            algorithm: object) -> dict[str, Any]:
        """Encrypt with an RSA ENCRYPT_DECRYPT key (state and usage already checked)."""
        alg = self._rsa_algorithm(key, algorithm, context)
        limit = asym.oaep_max_plaintext(key.metadata.key_spec.value, alg)
        if len(plaintext) > limit:
            raise ValidationException(
                f"Plaintext is too long: {alg} with key spec {key.metadata.key_spec} encrypts "
                f"at most {limit} bytes.")
        try:
            blob = asym.oaep_encrypt(self._private_material(key), alg, plaintext)
        except CryptoError:
            raise KMSInternalException("The key material is unusable.") from None
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": alg}

    def _decrypt_asymmetric(self, call: Any, ciphertext_blob: object, key_id: object,
                            context: Mapping[str, str], algorithm: object) -> dict[str, Any]:
        """Decrypt a raw RSA-OAEP ciphertext; AWS requires KeyId for asymmetric ciphertexts."""
        _enum(algorithm, _ENCRYPTION_ALGORITHMS, "encryptionAlgorithm")
        data = _bytes(ciphertext_blob, "ciphertextBlob", MAX_RSA_CIPHERTEXT)
        if key_id is None:
            raise ValidationException(
                "KeyId is required to decrypt a ciphertext of an asymmetric KMS key.")
        key = self._resolve(call, key_id, "Decrypt")
        self._require_usable(key, "Decrypt")
        alg = self._rsa_algorithm(key, algorithm, context)
        try:
            plaintext = asym.oaep_decrypt(self._private_material(key), alg, data)
        except CryptoError:
            raise InvalidCiphertextException("") from None
        return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": alg}

    def _rsa_algorithm(self, key: Key, algorithm: object, context: Mapping[str, str]) -> str:
        alg = _enum(algorithm, _ENCRYPTION_ALGORITHMS, "encryptionAlgorithm")
        allowed = key_algorithms(key.metadata.key_spec, key.metadata.key_usage).get(
            "EncryptionAlgorithms", [])
        if alg not in allowed:
            raise InvalidKeyUsageException(
                f"Algorithm {alg} is incompatible with key spec {key.metadata.key_spec}.")
        if context:
            raise ValidationException(
                "EncryptionContext is not supported with asymmetric KMS keys.")
        return alg

    # -- helpers -----------------------------------------------------------------------------

    def _usable(self, key: Key, op: str, usage: KeyUsage) -> None:
        """Key-state matrix row "Sign, Verify, GetPublicKey, GenerateMac, VerifyMac", then
        the key usage the operation needs."""
        if key.state is KeyState.DISABLED:
            raise DisabledException(f"{key.arn} is disabled.")
        if key.state is not KeyState.ENABLED:
            raise KMSInvalidStateException(f"{key.arn} {_STATE_PHRASE[key.state]}")
        if key.metadata.key_usage is not usage:
            raise InvalidKeyUsageException(
                f"{key.arn} key usage is {key.metadata.key_usage} which is not valid for {op}.")

    def _private_material(self, key: Key) -> bytes:
        kv = self._store.get_version(key.key_id, key.current_version)
        unwrap = getattr(self._backend, "unwrap_private", None)
        if kv is None or unwrap is None:
            raise KMSInternalException(f"{key.arn} has no usable key material")
        try:
            return unwrap(MaterialRef(key.wrap_arn, kv.version, kv.material))
        except CryptoError:
            raise KMSInternalException(f"{key.arn} has no usable key material") from None

    @staticmethod
    def _key_algorithm(key: Key, value: object, kind: str, param: str,
                       allowed_values: Sequence[str]) -> str:
        alg = _enum(value, allowed_values, param)
        if alg not in key_algorithms(key.metadata.key_spec, key.metadata.key_usage).get(kind,
                                                                                       []):
            raise InvalidKeyUsageException(
                f"Algorithm {alg} is incompatible with key spec {key.metadata.key_spec}.")
        return alg

    def _signing(self, call: Any, op: str, key_id: object, message: object,
                 signing_algorithm: object, message_type: object) -> tuple[Key, str, bytes, bool]:
        msg = _bytes(message, "message", MAX_MESSAGE)
        mtype = _enum(message_type, _MESSAGE_TYPES, "messageType")
        _enum(signing_algorithm, _SIGNING_ALGORITHMS, "signingAlgorithm")
        key = self._resolve(call, key_id, op)
        self._usable(key, op, KeyUsage.SIGN_VERIFY)
        alg = self._key_algorithm(key, signing_algorithm, "SigningAlgorithms",
                                  "signingAlgorithm", _SIGNING_ALGORITHMS)
        if mtype == "EXTERNAL_MU":
            raise ValidationException("MessageType EXTERNAL_MU is valid only for ML_DSA keys.")
        digest = mtype == "DIGEST"
        if digest and alg == "ED25519_SHA_512":
            raise ValidationException(
                "The ED25519_SHA_512 signing algorithm does not support the DIGEST message "
                "type.")
        if digest and len(msg) != asym.digest_size(alg):
            raise ValidationException(f"Digest is invalid length for algorithm {alg}.")
        return key, alg, msg, digest

    # -- Sign / Verify / GetPublicKey --------------------------------------------------------

    def sign(self, caller: Caller, key_id: str, message: bytes, signing_algorithm: str, *,
             message_type: str = "RAW",
             grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "Sign", {"keyId": P.s(key_id),
                                         "signingAlgorithm": P.s(signing_algorithm),
                                         "messageType": P.s(message_type)},
                        read_only=True) as call:
            self._grant_tokens(grant_tokens)
            key, alg, msg, digest = self._signing(call, "Sign", key_id, message,
                                                  signing_algorithm, message_type)
            try:
                signature = asym.sign(self._private_material(key), alg, msg, digest=digest)
            except CryptoError:
                raise KMSInternalException("The key material is unusable.") from None
            return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": alg}

    def verify(self, caller: Caller, key_id: str, message: bytes, signature: bytes,
               signing_algorithm: str, *, message_type: str = "RAW",
               grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "Verify", {"keyId": P.s(key_id),
                                           "signingAlgorithm": P.s(signing_algorithm),
                                           "messageType": P.s(message_type)},
                        read_only=True) as call:
            self._grant_tokens(grant_tokens)
            sig = _bytes(signature, "signature", MAX_SIGNATURE)
            key, alg, msg, digest = self._signing(call, "Verify", key_id, message,
                                                  signing_algorithm, message_type)
            try:
                asym.verify(self._private_material(key), alg, msg, sig, digest=digest)
            except CryptoError:
                raise KMSInvalidSignatureException("") from None
            return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": alg}

    def get_public_key(self, caller: Caller, key_id: str,
                       grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "GetPublicKey", {"keyId": P.s(key_id)},
                        read_only=True) as call:
            self._grant_tokens(grant_tokens)
            key = self._resolve(call, key_id, "GetPublicKey")
            meta = key.metadata
            self._usable(key, "GetPublicKey", meta.key_usage)
            if meta.key_spec.value not in asym.RSA_SPECS and meta.key_spec.value not in \
                    asym.EC_SPECS:
                raise UnsupportedOperationException(
                    f"{key.arn} key spec {meta.key_spec} is not valid for GetPublicKey.")
            try:
                public = asym.public_der(self._private_material(key))
            except CryptoError:
                raise KMSInternalException("The key material is unusable.") from None
            return {"KeyId": key.arn, "PublicKey": public,
                    "CustomerMasterKeySpec": meta.key_spec.value, "KeySpec": meta.key_spec.value,
                    "KeyUsage": meta.key_usage.value,
                    **key_algorithms(meta.key_spec, meta.key_usage)}

    # -- HMAC --------------------------------------------------------------------------------

    def _mac(self, call: Any, op: str, key_id: object, message: object,
             mac_algorithm: object) -> tuple[Key, str, bytes]:
        msg = _bytes(message, "message", MAX_MESSAGE)
        _enum(mac_algorithm, sorted(asym.MAC_HASH), "macAlgorithm")
        key = self._resolve(call, key_id, op)
        self._usable(key, op, KeyUsage.GENERATE_VERIFY_MAC)
        alg = self._key_algorithm(key, mac_algorithm, "MacAlgorithms", "macAlgorithm",
                                  sorted(asym.MAC_HASH))
        return key, alg, msg

    def generate_mac(self, caller: Caller, message: bytes, key_id: str, mac_algorithm: str, *,
                     grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "GenerateMac", {"keyId": P.s(key_id),
                                                "macAlgorithm": P.s(mac_algorithm)},
                        read_only=True) as call:
            self._grant_tokens(grant_tokens)
            key, alg, msg = self._mac(call, "GenerateMac", key_id, message, mac_algorithm)
            return {"Mac": asym.hmac_generate(self._private_material(key), alg, msg),
                    "MacAlgorithm": alg, "KeyId": key.arn}

    def verify_mac(self, caller: Caller, message: bytes, key_id: str, mac_algorithm: str,
                   mac: bytes, *, grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        with self._call(caller, "VerifyMac", {"keyId": P.s(key_id),
                                              "macAlgorithm": P.s(mac_algorithm)},
                        read_only=True) as call:
            self._grant_tokens(grant_tokens)
            tag = _bytes(mac, "mac", MAX_SIGNATURE)
            key, alg, msg = self._mac(call, "VerifyMac", key_id, message, mac_algorithm)
            try:
                asym.hmac_verify(self._private_material(key), alg, msg, tag)
            except CryptoError:
                raise KMSInvalidMacException("") from None
            return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": alg}

    # -- key agreement -----------------------------------------------------------------------

    def derive_shared_secret(self, caller: Caller, key_id: str, key_agreement_algorithm: str,
                             public_key: bytes, *, grant_tokens: Sequence[str] | None = None,
                             recipient: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._call(caller, "DeriveSharedSecret", {
                "keyId": P.s(key_id), "keyAgreementAlgorithm": P.s(key_agreement_algorithm)},
                read_only=True) as call:
            self._grant_tokens(grant_tokens)
            peer = _bytes(public_key, "publicKey", MAX_PUBLIC_KEY)
            _enum(key_agreement_algorithm, ("ECDH",), "keyAgreementAlgorithm")
            if recipient is not None:
                raise UnsupportedOperationException("Recipient (attested enclaves) is not "
                                                    "supported.")
            key = self._resolve(call, key_id, "DeriveSharedSecret")
            self._usable(key, "DeriveSharedSecret", KeyUsage.KEY_AGREEMENT)
            alg = self._key_algorithm(key, key_agreement_algorithm, "KeyAgreementAlgorithms",
                                      "keyAgreementAlgorithm", ("ECDH",))
            try:
                secret = asym.ecdh(self._private_material(key), peer)
            except ValueError as exc:
                raise ValidationException(str(exc)) from None
            except CryptoError:
                raise KMSInternalException("The key material is unusable.") from None
            return {"KeyId": key.arn, "SharedSecret": secret, "KeyAgreementAlgorithm": alg,
                    "KeyOrigin": key.metadata.origin.value}

    # -- data key pairs ----------------------------------------------------------------------

    def generate_data_key_pair(self, caller: Caller, key_id: str, key_pair_spec: str, *,
                               encryption_context: Mapping[str, str] | None = None,
                               grant_tokens: Sequence[str] | None = None,
                               recipient: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._data_key_pair(caller, "GenerateDataKeyPair", key_id, key_pair_spec,
                                   encryption_context, grant_tokens, recipient,
                                   with_plaintext=True)

    def generate_data_key_pair_without_plaintext(
            self, caller: Caller, key_id: str, key_pair_spec: str, *,
            encryption_context: Mapping[str, str] | None = None,
            grant_tokens: Sequence[str] | None = None) -> dict[str, Any]:
        return self._data_key_pair(caller, "GenerateDataKeyPairWithoutPlaintext", key_id,
                                   key_pair_spec, encryption_context, grant_tokens, None,
                                   with_plaintext=False)

    def _data_key_pair(self, caller: Caller, op: str, key_id: object, key_pair_spec: object,
                       encryption_context: Mapping[str, str] | None,
                       grant_tokens: Sequence[str] | None, recipient: object, *,
                       with_plaintext: bool) -> dict[str, Any]:
        with self._call(caller, op, {"keyId": P.s(key_id), "keyPairSpec": P.s(key_pair_spec)},
                        read_only=True) as call:
            context = ec.validate(encryption_context)
            call.params["encryptionContext"] = context or None
            self._grant_tokens(grant_tokens)
            spec = _enum(key_pair_spec, _KEY_PAIR_SPECS, "keyPairSpec")
            if recipient is not None:
                raise UnsupportedOperationException("Recipient (attested enclaves) is not "
                                                    "supported.")
            key = self._resolve(call, key_id, op)
            self._require_usable(key, op)
            if key.metadata.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
                raise InvalidKeyUsageException(
                    f"{key.arn} key spec {key.metadata.key_spec} is not valid for {op}; use a "
                    "symmetric encryption KMS key.")
            if spec == "SM2":
                raise UnsupportedOperationException("KeyPairSpec SM2 is not supported.")
            private = asym.generate_private(spec)
            out: dict[str, Any] = {
                "PrivateKeyCiphertextBlob": self._seal(key, private, context),
                "PublicKey": asym.public_der(private), "KeyId": key.arn, "KeyPairSpec": spec}
            if with_plaintext:
                out["PrivateKeyPlaintext"] = private
            return out

    # -- random ------------------------------------------------------------------------------

    def generate_random(self, caller: Caller, *, number_of_bytes: int | None = None,
                        custom_key_store_id: str | None = None,
                        recipient: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._call(caller, "GenerateRandom", {
                "numberOfBytes": number_of_bytes if isinstance(number_of_bytes, int) else None,
                "customKeyStoreId": P.s(custom_key_store_id)}, read_only=True):
            n = number_of_bytes
            if (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_RANDOM):
                raise ValidationException(
                    "1 validation error detected: Value at 'numberOfBytes' failed to satisfy "
                    f"constraint: Member must have value between 1 and {MAX_RANDOM}")
            if recipient is not None:
                raise UnsupportedOperationException("Recipient (attested enclaves) is not "
                                                    "supported.")
            if custom_key_store_id is not None:
                # Random bytes from the store's token (kms.custom_key_stores).
                self._own_store(caller, custom_key_store_id)
                return {"Plaintext": self._hsm_random(custom_key_store_id, n)}
            return {"Plaintext": self._rand(n)}
