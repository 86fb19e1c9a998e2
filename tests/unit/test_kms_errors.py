"""Every KMS error class maps to an AWS __type and an HTTP status."""
from __future__ import annotations

import pytest

from kms import errors
from kms.errors import KMSError, all_error_classes


def test_every_error_class_has_type_and_status():
    classes = all_error_classes()
    assert len(classes) >= 20
    for cls in classes:
        assert isinstance(cls.type, str) and cls.type, cls
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls
        if cls is not KMSError:
            assert cls.type == cls.__name__, cls   # named by the AWS __type


def test_every_public_error_is_reachable_from_the_root():
    public = {getattr(errors, n) for n in errors.__all__ if n[0].isupper()}
    assert public == set(all_error_classes())


@pytest.mark.parametrize("cls,status", [
    (errors.NotFoundException, 400), (errors.AccessDeniedException, 400),
    (errors.KMSInternalException, 500), (errors.DependencyTimeoutException, 503),
])
def test_status(cls, status):
    err = cls("m")
    assert err.http_status == status and err.message == "m" and str(err) == "m"
