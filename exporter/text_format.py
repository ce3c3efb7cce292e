"""The Prometheus text format (0.0.4), byte for byte what prometheus-client writes, faster.

``prometheus_client.generate_latest`` validates and escapes every metric and label
*name* of every sample, character class by character class, on every scrape: about
half of what ``serve`` spent encoding a 30 KB ``/metrics``.  Names come from
:mod:`exporter.metrics` (a fixed, small set), so this encoder escapes each distinct
name once (bounded caches) and does the rest as prometheus-client does; label
*values*, which outside data feeds, are escaped on every sample exactly as there.
Only the default negotiation result (plain 0.0.4, underscore escaping) is encoded
here; OpenMetrics and the escaping variants stay with prometheus-client
(:func:`choose_encoder`), and ``tests/exporter/test_text_format.py`` holds the two
encoders to the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from prometheus_client import utils
from prometheus_client.exposition import choose_encoder as _choose_encoder
from prometheus_client.exposition import generate_latest as _generate_latest
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import Collector

#: distinct names remembered; ours are a few hundred, the bound is for anything else
_CACHE = 4096

#: Go's float formatting, as prometheus-client writes values (the function is untyped)
_go_float: Callable[[float], str] = utils.floatToGoString

#: OpenMetrics-only samples prometheus-client moves into a gauge family of their own
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")

_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


@lru_cache(maxsize=_CACHE)
def _metric_name(name: str) -> str:
    return escape_metric_name(name)


@lru_cache(maxsize=_CACHE)
def _label_prefix(name: str) -> str:
    return f'{escape_label_name(name)}="'


def _value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _line(name: str, labels: dict[str, str], value: float, timestamp: Any) -> str:
    if labels:
        pairs = ",".join(_label_prefix(k) + _value(v) + '"' for k, v in sorted(labels.items()))
        head = f"{_metric_name(name)}{{{pairs}}}"
    else:
        head = _metric_name(name)
    if timestamp is None:
        return f"{head} {_go_float(value)}\n"
    return f"{head} {_go_float(value)} {int(float(timestamp) * 1000):d}\n"


def generate_latest(registry: Collector) -> bytes:
    """``prometheus_client.generate_latest(registry)``, same bytes, less work per sample."""
    output: list[str] = []
    append = output.append
    for metric in registry.collect():
        try:
            mname, mtype = metric.name, metric.type
            if mtype == "counter":
                mname += "_total"
            elif mtype == "info":
                mname += "_info"
            mtype = _TYPES.get(mtype, mtype)
            name = _metric_name(mname)
            doc = _help(metric.documentation)
            append(f"# HELP {name} {doc}\n# TYPE {name} {mtype}\n")
            om_samples: dict[str, list[str]] = {}
            own = metric.name
            for s in metric.samples:
                sname = s.name
                if sname != own and sname.startswith(own):
                    suffix = sname[len(own) :]
                    if suffix in _OM_SUFFIXES:
                        om_samples.setdefault(suffix, []).append(
                            _line(sname, s.labels, s.value, s.timestamp)
                        )
                        continue
                append(_line(sname, s.labels, s.value, s.timestamp))
        except Exception as exception:
            exception.args = (exception.args or ("",)) + (metric,)
            raise
        for suffix, lines in sorted(om_samples.items()):
            name = _metric_name(metric.name + suffix)
            append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
            output.extend(lines)
    return "".join(output).encode("utf-8")


def choose_encoder(accept: str) -> tuple[Callable[[Collector], bytes], str]:
    """prometheus-client's content negotiation, with this encoder for its default."""
    encoder, content_type = _choose_encoder(accept)
    if encoder is _generate_latest:
        return generate_latest, content_type
    return encoder, content_type
