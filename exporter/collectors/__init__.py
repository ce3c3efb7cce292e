"""One prometheus-client collector per source the exporter reads.

``redis_info`` (INFO on each scrape), ``postgres`` (the buffer-cache layer),
and the background ``keyspace_sampler`` and ``evictions`` collectors.  Each
``collect()`` yields new metric families every scrape; none mutates globals.
"""

from __future__ import annotations
