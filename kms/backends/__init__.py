"""Key backends: where key material lives and where the AEAD runs."""
from kms.backends.base import KeyBackend, MaterialRef

__all__ = ["KeyBackend", "MaterialRef"]
