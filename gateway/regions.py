"""Which regions a deployment serves. One Coffer serves several regions, as separate AWS
regions are: the SigV4 credential-scope region picks the KMS key namespace, and each bucket lives
in one region (CreateBucket LocationConstraint). By default every syntactically valid region
name is served; ``--regions`` / ``COFFER_REGIONS`` narrows it to a list."""
from __future__ import annotations

import re

from gateway.config import Config

__all__ = ["region_allowed", "wrong_region"]

_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def region_allowed(cfg: Config, region: str | None) -> bool:
    if not region or not _REGION_RE.fullmatch(region):
        return False
    return cfg.regions is None or region in cfg.regions or region == cfg.region


def wrong_region(signed: str, expected: str) -> dict[str, str]:
    """S3's AuthorizationHeaderMalformed for a request signed for the wrong region."""
    return {"message": f"The authorization header is malformed; the region '{signed}' is "
                       f"wrong; expecting '{expected}'", "Region": expected}
