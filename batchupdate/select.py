"""`select`: list a model's versions (ListModelVersions, every page) as job rows.

The API filters by ApprovalStatus, SourceType and Label; a VersionName glob is applied here.
Each page is read through the retry policy. A version seen on two pages (the list changed
while it was read) is given once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .client import LIST_PAGE_SIZE, PaiClient, Response
from .retry import RetryPolicy

__all__ = ["select_versions"]


async def select_versions(
    client: PaiClient,
    model_id: str,
    *,
    filters: Mapping[str, str] | None = None,
    version_pattern: str | None = None,
    page_size: int = LIST_PAGE_SIZE,
    policy: RetryPolicy | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every version of `model_id` that matches, once, as the API returns it."""
    policy = policy or RetryPolicy()
    seen: set[str] = set()
    page, read = 1, 0
    while True:

        async def fetch(page: int = page) -> Response:
            return await client.list_versions_page(model_id, page, page_size, filters)

        response = await policy.call(fetch)
        versions = response.data.get("Versions") or []
        total = int(response.data.get("TotalCount") or 0)
        for version in versions:
            name = str(version.get("VersionName"))
            if name in seen:
                continue
            seen.add(name)
            if version_pattern is None or fnmatch.fnmatchcase(name, version_pattern):
                yield version
        read += len(versions)
        if not versions or read >= total:
            return
        page += 1
