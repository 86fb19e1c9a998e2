"""Key stores: persistence of keys, key versions (backend records) and aliases."""
from kms.store.base import KeyStore

__all__ = ["KeyStore"]
