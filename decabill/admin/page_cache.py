"""The admin invoice pages a process answered on PostgreSQL, kept with the version of the tenant's list they were
read at, and answered again while that version is unchanged.

* The version is `invoice_counts.list_version`. The database changes it at the commit of every transaction that
  changes what the list shows or matches: an invoice inserted, deleted or updated in a listed column, an owner's
  email, a subscription number (triggers of migration 0029) — whichever process, worker or tool commits it.
* A page is read together with the version, in one statement, so in one snapshot: the version it is kept with is
  the version of exactly what it holds. Answering a kept page costs one primary-key read of the current version;
  equal means nothing the page shows has been committed since, so the kept page is what the search would read now.
  Never out of date, across processes, without a message between them.
* Bounded by `ADMIN_PAGE_CACHE_BYTES` per process, counting each page's JSON, its query's text and a fixed
  overhead (least recently used first out; a page larger than the whole budget is not kept). `0` keeps none.
* Keyed by database (`db.generation()`), tenant and query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import NamedTuple

from cachetools import LRUCache

from decabill import db
from decabill.config import get_settings
from decabill.observability import metrics
from decabill.tenancy import current_tenant


#: what an entry costs besides its JSON and its query's text (the key, the tuple, the objects): a page of no items
#: for a long search term must count too, or the budget would not bound the entries
ENTRY_OVERHEAD = 256


class KeptPage(NamedTuple):
    items: str  # the page's items as the JSON text PostgreSQL wrote
    total: int
    version: int
    size: int  # counted against the budget: the JSON, the query's text and ENTRY_OVERHEAD


def _size(page: KeptPage) -> int:
    return page.size


class AdminPageCache:
    def __init__(self) -> None:
        self._pages: LRUCache[Hashable, KeptPage] = LRUCache(0, getsizeof=_size)

    async def page(self, query: Hashable, current_version: Callable[[], Awaitable[int]],
                   read: Callable[[], Awaitable[tuple[str, int, int | None]]]) -> tuple[str, int]:
        """(items JSON, total) of `query` in the request's tenant: the kept page when `current_version()` is the
        version it was read at, else `read()` — (items, total, the version it read them at, or None: not kept)."""
        pages = self._sized()
        key = (db.generation(), current_tenant(), query)
        kept = pages.get(key)
        if kept is not None and kept.version == await current_version():
            metrics.ADMIN_PAGE_CACHE.labels("hit").inc()
            return kept.items, kept.total
        metrics.ADMIN_PAGE_CACHE.labels("miss" if kept is None else "stale").inc()
        items, total, version = await read()
        size = len(items) + len(repr(query)) + ENTRY_OVERHEAD
        if version is not None and size <= pages.maxsize:
            pages[key] = KeptPage(items, total, version, size)
        return items, total

    def _sized(self) -> LRUCache[Hashable, KeptPage]:
        budget = get_settings().admin_page_cache_bytes
        if self._pages.maxsize != budget:  # the setting changed (tests): start again with the new budget
            self._pages = LRUCache(budget, getsizeof=_size)
        return self._pages


admin_pages = AdminPageCache()
