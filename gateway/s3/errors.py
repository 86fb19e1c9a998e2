"""S3 wire errors: one table of codes, one exception type.

Every failure that reaches an S3 client is an ``S3Error`` carrying an AWS error code. The HTTP
status and the default message come from ``ERRORS`` (codes and statuses as listed in the S3 API
reference, "Error responses"). Rendering to XML happens once, in ``gateway.middleware``.
"""
from __future__ import annotations

__all__ = ["S3Error", "ERRORS"]

# code -> (HTTP status, default message)
ERRORS: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Error parsing the X-Amz-Credential parameter."),
    "BadRequest": (400, "Bad Request"),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available. The bucket namespace "
                                 "is shared by all users of the system. Please select a different "
                                 "name and try again."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket succeeded "
                                     "and you already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "ConditionalRequestConflict": (409, "The conditional request cannot succeed due to a "
                                        "conflicting operation against this resource."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size"),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (400, "The specified location-constraint is not valid."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the "
                            "Content-Length HTTP header."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidChunkSizeError": (403, "Only the last chunk is allowed to have a size less than "
                                   "8192 bytes"),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidEncryptionAlgorithmError": (400, "The encryption request you specified is not valid. "
                                             "The valid value is AES256."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidObjectState": (403, "The operation is not valid for the current state of the object."),
    "InvalidPart": (400, "One or more of the specified parts could not be found. The part may not "
                         "have been uploaded, or the specified entity tag may not match the "
                         "part's entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. The parts list must "
                              "be specified in order by part number."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedPolicy": (400, "Policy has invalid resource"),
    "MalformedTrailerError": (400, "The request contained trailing data that was not well-formed "
                                   "or did not conform to our published schema."),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against "
                          "our published schema"),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request Body is empty"),
    "MissingSecurityHeader": (400, "Your request was missing a required header"),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, or "
                          "the upload may have been aborted or completed."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented"),
    "NotModified": (304, "Not Modified"),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time "
                                  "is too large."),
    "RequestTimeout": (400, "Your socket connection to the server was not read from or written to "
                            "within the timeout period."),
    "ServerSideEncryptionConfigurationNotFoundError": (404, "The server side encryption "
                                                            "configuration was not found"),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the "
                                   "signature you provided. Check your key and signing method."),
    "SlowDown": (503, "Please reduce your request rate."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match "
                                       "what was computed."),
}


class S3Error(Exception):
    """An AWS S3 error: ``code`` picks status and default message from ``ERRORS``.

    ``fields`` become extra child elements of ``<Error>`` (e.g. ``BucketName``, ``Key``,
    ``UploadId``), as AWS includes them. ``headers`` are added to the error response.
    """

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None, **fields: str) -> None:
        default_status, default_message = ERRORS.get(code, (500, code))
        self.code = code
        self.message = message if message is not None else default_message
        self.status = status if status is not None else default_status
        self.headers = headers or {}
        self.fields = {k: str(v) for k, v in fields.items() if v is not None}
        super().__init__(f"{code}: {self.message}")
