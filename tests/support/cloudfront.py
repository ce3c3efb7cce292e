"""CloudFront standard log lines and files built from AWS' documented field list."""

from __future__ import annotations

import gzip
from pathlib import Path

#: AWS CloudFront developer guide, "Standard logging reference" > "Log file fields":
#: the 33 fields of a standard log line, in order (the #Fields: header names them)
AWS_FIELDS = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
]


def cf_line(stem: str, result: str, fields: list[str] = AWS_FIELDS, **extra: str) -> str:
    """One CloudFront log line: every documented field, plausible values."""
    values = {
        "date": "2026-11-29",
        "time": "17:01:02",
        "x-edge-location": "FRA56-P1",
        "sc-bytes": "1045",
        "c-ip": "192.0.2.10",
        "cs-method": "GET",
        "cs(Host)": "d111111abcdef8.cloudfront.net",
        "cs-uri-stem": stem,
        "sc-status": "200",
        "cs(Referer)": "-",
        "cs(User-Agent)": "Mozilla/5.0%20(X11)",
        "cs-uri-query": "token=SECRET",
        "cs(Cookie)": "-",
        "x-edge-result-type": result,
        "x-edge-request-id": "Xy1-abcd==",
        "x-host-header": "app.example.com",
        "cs-protocol": "https",
        "cs-bytes": "120",
        "time-taken": "0.004",
        "x-forwarded-for": "-",
        "ssl-protocol": "TLSv1.3",
        "ssl-cipher": "TLS_AES_128_GCM_SHA256",
        "x-edge-response-result-type": result,
        "cs-protocol-version": "HTTP/2.0",
        "fle-status": "-",
        "fle-encrypted-fields": "-",
        "c-port": "51234",
        "time-to-first-byte": "0.003",
        "x-edge-detailed-result-type": result,
        "sc-content-type": "application/json",
        "sc-content-len": "900",
        "sc-range-start": "-",
        "sc-range-end": "-",
        **extra,
    }
    return "\t".join(values.get(name, "-") for name in fields)


def cf_file(path: Path, lines: list[str], fields: list[str] = AWS_FIELDS) -> None:
    body = "#Version: 1.0\n#Fields: " + " ".join(fields) + "\n" + "".join(f"{x}\n" for x in lines)
    path.write_bytes(gzip.compress(body.encode()))
