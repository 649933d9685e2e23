"""Forget the server warm-up's image request.

A vision model's warm-up sends a real chat request with a tiny image, so its prompt (image
placeholder tokens keyed by that image's hash) stays in the radix cache and takes KV space
until evicted. The warm-up flushes the cache once it is answered, before the server reports
healthy, so the first user request starts from an empty cache.
"""

from __future__ import annotations

import logging

import requests

logger = logging.getLogger(__name__)

FLUSH_WAIT_S = 60.0  # the warm-up has returned; this only covers user requests that raced it


def flush_after_warmup(url: str, api_key: str | None, admin_api_key: str | None,
                       verify: bool | str = True) -> bool:
    """Flush the radix cache of the server at `url`. A refusal is logged as a warning, not
    raised: the entries only cost cache space, which is no reason to stop a healthy server."""
    key = admin_api_key or api_key  # /flush_cache takes the admin key when one is set
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    res = requests.post(f"{url}/flush_cache", params={"timeout": FLUSH_WAIT_S}, headers=headers,
                        timeout=FLUSH_WAIT_S + 30, verify=verify)
    if res.status_code != 200:
        logger.warning("vision warm-up: the radix cache keeps the warm-up image request "
                       "(/flush_cache answered %s: %s)", res.status_code, res.text.strip())
        return False
    logger.info("vision warm-up: radix cache flushed (no warm-up image entries kept)")
    return True
