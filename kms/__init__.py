"""Coffer's KMS, a library modelled on AWS KMS (no HTTP here; ``gateway.kms_api`` is the face).

Entry point: ``kms.service.KMS.open(data_dir)``; callers are ``kms.model.Caller``; errors are
``kms.errors.KMSError`` subclasses named by the AWS ``__type``.
"""
