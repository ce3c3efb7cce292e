"""A real nginx (Debian nginx-light) with ``proxy_cache`` on a free loopback port.

Runs in the foreground in its own prefix directory (config, cache, temp paths,
logs), writes the access log in the CDN reader's documented ``cache_slo``
format, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import free_port, require_binary, wait_for_port

#: the log_format documented in exporter/collectors/cdn_logs.py
LOG_FORMAT = (
    "'time=$time_iso8601\\tmethod=$request_method\\turi=$uri\\t"
    "status=$status\\tcache=$upstream_cache_status'"
)

CONFIG = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    proxy_cache_path {prefix}/cache levels=1 keys_zone=edge:1m max_size=16m inactive=1h;
    log_format cache_slo {log_format};
    access_log {prefix}/cache.log cache_slo;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_cache edge;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location /live/ {{
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"""


class Nginx:
    """nginx -p PREFIX -c nginx.conf -g 'daemon off;' in front of ``upstream``."""

    def __init__(self, prefix: Path, upstream: int) -> None:
        self.prefix = prefix
        self.upstream = upstream
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = prefix / "cache.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        # Debian installs it in /usr/sbin, which a non-login PATH may lack
        binary = shutil.which("nginx", path="/usr/sbin") or require_binary("nginx")
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        config = self.prefix / "nginx.conf"
        config.write_text(
            CONFIG.format(
                # as root nginx's workers would run as nobody, who cannot enter a 0700 tmp dir
                user="user root;" if os.geteuid() == 0 else "",
                prefix=self.prefix,
                port=self.port,
                upstream=self.upstream,
                log_format=LOG_FORMAT,
            )
        )
        args = [binary, "-p", str(self.prefix), "-c", str(config), "-e", "stderr",
                "-g", "daemon off;"]  # fmt: skip
        stderr = self.prefix / "stderr.log"
        with open(stderr, "wb") as errors:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            wait_for_port(self.port, proc=self.proc)
        except RuntimeError:
            raise RuntimeError(stderr.read_text(errors="replace")) from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
