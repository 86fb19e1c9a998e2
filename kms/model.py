"""The KMS data model: enums with AWS's spellings, key and alias records, the Caller.

Records are immutable; the store builds new ones for every state change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "KeyState", "KeySpec", "KeyUsage", "Origin", "KeyManager", "DataKeySpec",
    "EncryptionAlgorithm", "RotationType", "KeyMetadata", "key_algorithms", "Key", "KeyVersion", "Alias", "Caller",
    "ConnectionState", "CustomKeyStore",
]


class KeyState(StrEnum):
    CREATING = "Creating"
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    UNAVAILABLE = "Unavailable"
    UPDATING = "Updating"


# How KMS error messages name a key's state: "<key ARN> is pending deletion."
STATE_MESSAGE: dict[KeyState, str] = {
    KeyState.PENDING_DELETION: "is pending deletion.",
    KeyState.PENDING_REPLICA_DELETION: "is pending replica deletion.",
    KeyState.PENDING_IMPORT: "is pending import.",
    KeyState.UNAVAILABLE: "is unavailable.",
    KeyState.CREATING: "is creating.",
    KeyState.UPDATING: "is updating.",
    KeyState.DISABLED: "is disabled.",
}


class KeySpec(StrEnum):
    # The full botocore enum, so a valid-but-unsupported spec is told apart from a typo.
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"
    ECC_NIST_P521 = "ECC_NIST_P521"
    ECC_SECG_P256K1 = "ECC_SECG_P256K1"
    ECC_NIST_EDWARDS25519 = "ECC_NIST_EDWARDS25519"
    HMAC_224 = "HMAC_224"
    HMAC_256 = "HMAC_256"
    HMAC_384 = "HMAC_384"
    HMAC_512 = "HMAC_512"
    SM2 = "SM2"
    ML_DSA_44 = "ML_DSA_44"
    ML_DSA_65 = "ML_DSA_65"
    ML_DSA_87 = "ML_DSA_87"


class KeyUsage(StrEnum):
    ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
    SIGN_VERIFY = "SIGN_VERIFY"
    GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
    KEY_AGREEMENT = "KEY_AGREEMENT"


class Origin(StrEnum):
    AWS_KMS = "AWS_KMS"
    EXTERNAL = "EXTERNAL"
    AWS_CLOUDHSM = "AWS_CLOUDHSM"
    EXTERNAL_KEY_STORE = "EXTERNAL_KEY_STORE"


class KeyManager(StrEnum):
    CUSTOMER = "CUSTOMER"
    AWS = "AWS"


class DataKeySpec(StrEnum):
    AES_256 = "AES_256"
    AES_128 = "AES_128"


class EncryptionAlgorithm(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSAES_OAEP_SHA_1 = "RSAES_OAEP_SHA_1"
    RSAES_OAEP_SHA_256 = "RSAES_OAEP_SHA_256"
    SM2PKE = "SM2PKE"


class RotationType(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    ON_DEMAND = "ON_DEMAND"


_RSA_SIGNING = [f"{f}_SHA_{n}" for f in ("RSASSA_PSS", "RSASSA_PKCS1_V1_5")
                for n in (256, 384, 512)]
# Per KeySpec and KeyUsage, the algorithm lists DescribeKey / GetPublicKey show (CreateKey doc,
# "Choosing a KMS key type"). Ed25519ph (ED25519_PH_SHA_512) is not offered: see asymmetric.py.
_ALGORITHMS: dict[tuple[str, str], tuple[str, list[str]]] = {
    **{(s, "ENCRYPT_DECRYPT"): ("EncryptionAlgorithms", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
       for s in ("RSA_2048", "RSA_3072", "RSA_4096")},
    **{(s, "SIGN_VERIFY"): ("SigningAlgorithms", _RSA_SIGNING)
       for s in ("RSA_2048", "RSA_3072", "RSA_4096")},
    ("ECC_NIST_P256", "SIGN_VERIFY"): ("SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", "SIGN_VERIFY"): ("SigningAlgorithms", ["ECDSA_SHA_384"]),
    ("ECC_NIST_P521", "SIGN_VERIFY"): ("SigningAlgorithms", ["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", "SIGN_VERIFY"): ("SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"): ("SigningAlgorithms", ["ED25519_SHA_512"]),
    **{(s, "KEY_AGREEMENT"): ("KeyAgreementAlgorithms", ["ECDH"])
       for s in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")},
    **{(f"HMAC_{n}", "GENERATE_VERIFY_MAC"): ("MacAlgorithms", [f"HMAC_SHA_{n}"])
       for n in (224, 256, 384, 512)},
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"): ("EncryptionAlgorithms", ["SYMMETRIC_DEFAULT"]),
}


def key_algorithms(key_spec: str, key_usage: str) -> dict[str, list[str]]:
    """``{"SigningAlgorithms": [...]}`` etc. for a spec/usage pair; ``{}`` if it is invalid."""
    found = _ALGORITHMS.get((str(key_spec), str(key_usage)))
    return {found[0]: list(found[1])} if found else {}


@dataclass(frozen=True, slots=True)
class KeyMetadata:
    """DescribeKey's KeyMetadata, limited to the fields that apply to keys Coffer can hold."""

    account_id: str
    key_id: str
    arn: str
    creation_date: float
    description: str
    key_usage: KeyUsage
    key_state: KeyState
    origin: Origin
    key_manager: KeyManager
    key_spec: KeySpec
    deletion_date: float | None = None
    pending_deletion_window_in_days: int | None = None
    # Imported material (Origin EXTERNAL): KEY_MATERIAL_EXPIRES / _DOES_NOT_EXPIRE, ValidTo.
    expiration_model: str | None = None
    valid_to: float | None = None
    # Keys in a custom key store (Origin AWS_CLOUDHSM, kms.custom_key_stores).
    custom_key_store_id: str | None = None
    cloud_hsm_cluster_id: str | None = None
    # Multi-Region keys (``mrk-`` ids): the primary's region and the replicas' regions.
    multi_region: bool = False
    primary_region: str | None = None
    replica_regions: tuple[str, ...] = ()

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    @property
    def is_replica(self) -> bool:
        return self.multi_region and self.region != self.primary_region

    def multi_region_configuration(self) -> dict[str, Any]:
        """DescribeKey's MultiRegionConfiguration (BC DescribeKey)."""
        def ref(region: str) -> dict[str, str]:
            return {"Arn": f"arn:aws:kms:{region}:{self.account_id}:key/{self.key_id}",
                    "Region": region}
        return {"MultiRegionKeyType": "REPLICA" if self.is_replica else "PRIMARY",
                "PrimaryKey": ref(self.primary_region or self.region),
                "ReplicaKeys": [ref(r) for r in self.replica_regions]}

    @property
    def enabled(self) -> bool:
        return self.key_state is KeyState.ENABLED

    def to_api(self) -> dict[str, Any]:
        """AWS JSON shape; dates are epoch seconds as floats, as AWS sends them."""
        out: dict[str, Any] = {
            "AWSAccountId": self.account_id,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": float(self.creation_date),
            "Enabled": self.enabled,
            "Description": self.description,
            "KeyUsage": str(self.key_usage),
            "KeyState": str(self.key_state),
            "Origin": str(self.origin),
            "KeyManager": str(self.key_manager),
            "CustomerMasterKeySpec": str(self.key_spec),
            "KeySpec": str(self.key_spec),
            **key_algorithms(self.key_spec, self.key_usage),
            "MultiRegion": self.multi_region,
        }
        if self.multi_region:
            out["MultiRegionConfiguration"] = self.multi_region_configuration()
        if self.deletion_date is not None:
            out["DeletionDate"] = float(self.deletion_date)
        if self.pending_deletion_window_in_days is not None:
            out["PendingDeletionWindowInDays"] = self.pending_deletion_window_in_days
        if self.expiration_model is not None:
            out["ExpirationModel"] = self.expiration_model
        if self.valid_to is not None:
            out["ValidTo"] = float(self.valid_to)
        if self.custom_key_store_id is not None:
            out["CustomKeyStoreId"] = self.custom_key_store_id
        if self.cloud_hsm_cluster_id is not None:
            out["CloudHsmClusterId"] = self.cloud_hsm_cluster_id
        return out


@dataclass(frozen=True, slots=True)
class Key:
    """A key as stored: its metadata plus what DescribeKey does not show."""

    metadata: KeyMetadata
    policy: str
    tags: tuple[tuple[str, str], ...]
    current_version: int
    # Automatic rotation (kms.lifecycle): period in days (None = disabled) and next due date.
    rotation_period_days: int | None = None
    next_rotation_date: float | None = None
    # Imported material: digest naming the material first imported (reimports must match).
    material_id: str | None = None
    # The ARN the key was created under: its material is bound to it (kms.backends), so every
    # replica of a multi-Region key opens the same material whatever its own ARN.
    material_arn: str | None = None
    # The unique id of each IAM user the policy names, resolved when it was saved
    # ((user ARN, id), ...; kms.iam.policy "Principals saved as unique ids"). None: saved
    # before ids were kept, or by a KMS that knows no users (matched by ARN).
    policy_principals: tuple[tuple[str, str], ...] | None = None

    @property
    def arn(self) -> str:
        return self.metadata.arn

    @property
    def wrap_arn(self) -> str:
        return self.material_arn or self.metadata.arn

    @property
    def key_id(self) -> str:
        return self.metadata.key_id

    @property
    def account_id(self) -> str:
        return self.metadata.account_id

    @property
    def state(self) -> KeyState:
        return self.metadata.key_state


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One generation of a key's material. ``material`` is the backend's opaque record (for the
    software backend: the material wrapped by the root key), never raw key bytes."""

    key_id: str
    version: int
    creation_date: float
    rotation_type: RotationType | None   # None for the material made with the key
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Alias:
    account_id: str
    alias_name: str
    alias_arn: str
    target_key_id: str
    creation_date: float
    last_updated_date: float

    def to_api(self) -> dict[str, Any]:
        return {"AliasName": self.alias_name, "AliasArn": self.alias_arn,
                "TargetKeyId": self.target_key_id, "CreationDate": float(self.creation_date),
                "LastUpdatedDate": float(self.last_updated_date)}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the gateway authenticated it.

    ``via_service`` is set when an AWS service (the gateway's S3 face) calls on the principal's
    behalf, e.g. ``s3.us-east-1.amazonaws.com``; it becomes kms:ViaService and CloudTrail's
    ``userIdentity.invokedBy``.
    """

    principal_arn: str
    account_id: str
    source_ip: str = "127.0.0.1"
    secure_transport: bool = False
    via_service: str | None = None
    user_agent: str = ""
    request_id: str = ""
    access_key_id: str = ""
    # Authorization input (kms.authz): the principal's IAM identity policies (kms.iam.Policy;
    # empty for account roots), aws:username / aws:userid, and the signed region
    # (aws:RequestedRegion).
    identity_policies: tuple = ()
    user_name: str | None = None
    user_id: str | None = None
    requested_region: str | None = None


class ConnectionState(StrEnum):
    CONNECTED = "CONNECTED"
    CONNECTING = "CONNECTING"
    FAILED = "FAILED"
    DISCONNECTED = "DISCONNECTED"
    DISCONNECTING = "DISCONNECTING"


@dataclass(frozen=True, slots=True)
class CustomKeyStore:
    """A CloudHSM-style custom key store: a PKCS#11 token named by ``cluster_id`` (its label).
    ``password`` is the token's user PIN wrapped by the root key, never the PIN itself."""

    custom_key_store_id: str
    account_id: str
    name: str
    cluster_id: str
    trust_anchor_certificate: str
    password: bytes = field(repr=False)
    connection_state: ConnectionState
    connection_error_code: str | None
    creation_date: float

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CustomKeyStoreId": self.custom_key_store_id,
            "CustomKeyStoreName": self.name,
            "CloudHsmClusterId": self.cluster_id,
            "TrustAnchorCertificate": self.trust_anchor_certificate,
            "ConnectionState": str(self.connection_state),
            "CreationDate": float(self.creation_date),
            "CustomKeyStoreType": "AWS_CLOUDHSM",
        }
        if self.connection_state is ConnectionState.FAILED and self.connection_error_code:
            out["ConnectionErrorCode"] = self.connection_error_code
        return out
