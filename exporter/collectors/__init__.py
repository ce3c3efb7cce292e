"""One prometheus-client collector per source the exporter reads.

``redis_info`` (INFO on each scrape), ``postgres`` (the buffer-cache layer),
and the background ``keyspace_sampler`` and ``evictions`` collectors.  Each
``collect()`` yields new metric families every scrape; none mutates globals.

Whatever a server answers, no collector raises out of ``collect()`` and no
background worker dies: ``health`` holds the error classes, the supervisor's
restart backoff and :class:`~exporter.collectors.health.WorkerHealth`, which
serves ``cache_exporter_collector_{up,restarts_total,last_error}`` for the
background workers.
"""

from __future__ import annotations
