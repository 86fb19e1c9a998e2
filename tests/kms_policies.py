"""Identity policies for tests whose callers are IAM users (KMS authorization is AWS's: an IAM
user needs an identity-policy Allow next to the default key policy's root delegation)."""
from kms.iam import parse_policy

KMS_ADMIN = (parse_policy('{"Version": "2012-10-17", "Statement": [{"Sid": "KmsAdmin", '
                          '"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}',
                          name="kms-admin"),)
