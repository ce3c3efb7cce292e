"""ASGI middleware for the app's own HTTP layers: the API latency objective and the
browser cache, as far as a server can see it.

Wrap a FastAPI or Starlette app::

    from exporter.asgi import CacheMetricsMiddleware, mark_cached

    app.add_middleware(CacheMetricsMiddleware)      # default registry, ADR classes

    @app.get("/api/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        found = await cache.get(f"user:{user_id}")
        if found is not None:
            mark_cached()                            # counted as cached="true"
        ...

Per request it records ``api_request_duration_seconds{route, method,
status_class, cached}``: ``route`` is the matched route's template
(``/api/users/{user_id}``, mounts included), never the raw path; a request no
route matched is ``route="unmatched"``, and past :data:`MAX_ROUTES` templates the
rest share ``route="other"``.  ``cached`` is ``true`` when the app called
:func:`mark_cached` while serving the request (a sync endpoint too: the
request's mark is a mutable box the thread's copied context shares), or set
the response header ``X-App-Cache: hit`` (removed before the response leaves).

The browser layer: each response of a path class with a policy
(:mod:`exporter.paths`: immutable assets for a year, API ``max-age``/``s-maxage``
3600 with ``Vary: Authorization, Accept-Language``, HTML ``no-cache``) gets the
class's headers when it has none (``apply_policy=True``), and headers the app
set itself are checked: each broken rule counts
``cache_policy_violations_total{type, rule}``.  A conditional request
(``If-None-Match`` / ``If-Modified-Since``) answered 304 counts
``cache_hits_total{layer="browser"}``, one answered in full
``cache_misses_total{layer="browser"}``.  With ``answer_conditional=True`` (the
default) a 200 whose ``ETag`` matches the request's ``If-None-Match`` is sent as
a 304 without its body, so apps that set ETags get revalidation for free.

Nothing here imports Starlette: the middleware reads ``scope["route"]``, which
the router sets on the request's scope (FastAPI's for its own routes only), or
else ``scope["endpoint"]`` (a plain route's endpoint, a mount's app such as
``StaticFiles``), and walks the app's routes once to learn full templates.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from exporter.client.families import client_metrics
from exporter.metrics import (
    API_LATENCY,
    CACHE_POLICY_VIOLATIONS,
    HTTP_METHODS,
    LAYER_BROWSER,
    METHOD_OTHER,
    ROUTE_OTHER,
    ROUTE_UNMATCHED,
)
from exporter.paths import POLICIES, PathClasses, Policy, violations

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: distinct route templates kept as label values; the rest are route="other"
MAX_ROUTES = 256
#: the response header an app may set instead of calling mark_cached()
CACHE_HEADER = b"x-app-cache"
#: statuses whose headers follow the class's caching policy
_POLICY_STATUSES = frozenset({200, 203, 204, 206, 304})
_CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since"})
_DROPPED_ON_304 = frozenset({b"content-length", b"content-type", b"content-encoding"})
#: each policy's Cache-Control value as sent
_ENCODED = {name: (p.cache_control or "").encode() for name, p in POLICIES.items()}
#: distinct (policy, Cache-Control, Vary) verdicts remembered
_MAX_VERDICTS = 1024


class _Mark:
    """The current request's cache mark: a box, so a sync endpoint's thread (which
    runs in a copy of the context) can set it where the middleware reads it."""

    __slots__ = ("cached",)

    def __init__(self) -> None:
        self.cached = False


_current: contextvars.ContextVar[_Mark | None] = contextvars.ContextVar(
    "cache_slo_request_mark", default=None
)


def mark_cached() -> None:
    """Say that the response being served came from a cache (``cached="true"``).

    Outside a request served through the middleware it does nothing."""
    mark = _current.get()
    if mark is not None:
        mark.cached = True


class HttpMetrics:
    """The middleware's metric objects in one registry, built once per registry
    (Starlette may build an app's middleware stack more than once)."""

    _by_registry: WeakKeyDictionary[CollectorRegistry, HttpMetrics] = WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry, types: Iterable[str]) -> None:
        self.latency = Histogram(
            API_LATENCY.name,
            API_LATENCY.help,
            list(API_LATENCY.labels),
            buckets=API_LATENCY.buckets or (),
            registry=registry,
        )
        self.violations = Counter(
            CACHE_POLICY_VIOLATIONS.family,
            CACHE_POLICY_VIOLATIONS.help,
            list(CACHE_POLICY_VIOLATIONS.labels),
            registry=registry,
        )
        # the client's own families: one registry holds cache_hits_total once, and an
        # app that uses the cache client serves both layers from it
        shared = client_metrics(registry)
        self.hits = shared.hits
        self.misses = shared.misses
        self.known_types: set[str] = set()
        self.add_types(types)

    def add_types(self, types: Iterable[str]) -> None:
        """Pre-create the browser hit/miss children so they show as 0 from the start."""
        for type_ in types:
            if type_ not in self.known_types:
                self.known_types.add(type_)
                self.hits.labels(LAYER_BROWSER, type_)
                self.misses.labels(LAYER_BROWSER, type_)

    @classmethod
    def of(cls, registry: CollectorRegistry, types: Iterable[str]) -> HttpMetrics:
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry, types)
        else:
            found.add_types(types)
        return found


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "5xx"


def _etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Weak comparison (RFC 9110 13.1.2): ``W/"x"`` matches ``"x"``; ``*`` any."""
    wanted = if_none_match.strip()
    if wanted == b"*":
        return True
    own = etag.strip().removeprefix(b"W/")
    return any(tag.strip().removeprefix(b"W/") == own for tag in wanted.split(b","))


class CacheMetricsMiddleware:
    """Pure ASGI middleware (no response buffering, streaming untouched); see the
    module docstring.  Arguments:

    - ``registry``: where the metrics live (default: prometheus-client's).
    - ``classes``: path classes and policies (default: ADR-004's, ``exporter.paths``).
    - ``apply_policy``: add the class's headers to responses that have none.
    - ``answer_conditional``: turn a 200 whose ETag matches If-None-Match into a 304.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry | None = None,
        classes: PathClasses | None = None,
        apply_policy: bool = True,
        answer_conditional: bool = True,
    ) -> None:
        self.app = app
        self.classes = classes or PathClasses()
        self.apply_policy = apply_policy
        self.answer_conditional = answer_conditional
        self.metrics = HttpMetrics.of(registry or REGISTRY, self.classes.types)
        self._children: dict[tuple[str, str, str, str], Any] = {}
        self._routes: set[str] = set()
        self._templates: dict[int, str] = {}
        self._endpoints: dict[int, str] = {}
        self._unknown: set[int] = set()
        self._learned = False
        self._verdicts: dict[tuple[str, tuple[bytes, ...], tuple[bytes, ...]], tuple[str, ...]] = {}

    # --- route templates -------------------------------------------------------------

    def _learn_routes(self, app: Any) -> None:
        """Map each route object (by id) to its full template, mounts included, and each
        endpoint or mounted app (``scope["endpoint"]``) to its route's template."""
        found: dict[int, str] = {}
        #: id of a route's endpoint or a mount's app -> template ("" when ambiguous)
        endpoints: dict[int, str] = {}

        def walk(routes: Iterable[Any], prefix: str, depth: int) -> None:
            for route in routes:
                path = getattr(route, "path", None)
                if not isinstance(path, str):
                    continue
                template = prefix + path
                found[id(route)] = template
                # what the router leaves in scope["endpoint"]: a route's endpoint, a
                # mount's app; one that serves two templates tells neither apart ("")
                target = getattr(route, "endpoint", None) or getattr(route, "app", None)
                if target is not None:
                    key = id(target)
                    endpoints[key] = template if endpoints.get(key, template) == template else ""
                children = getattr(route, "routes", None)
                if children and depth < 8:
                    walk(children, template, depth + 1)

        walk(getattr(app, "routes", None) or (), "", 0)
        self._templates = found
        self._endpoints = endpoints

    def _route_label(self, app: Any, route: Any, endpoint: Any) -> str:
        """The template of the route that served the request; FastAPI's router marks
        ``scope["route"]`` for its own routes only, so a mounted app (StaticFiles) is
        found by ``scope["endpoint"]``, the mounted app itself."""
        if not self._learned and app is not None:
            self._learn_routes(app)
            self._learned = True
        if route is not None:
            template = self._templates.get(id(route))
            if template is None and app is not None and id(route) not in self._unknown:
                self._learn_routes(app)  # a route added after the first request
                template = self._templates.get(id(route))
                if template is None and len(self._unknown) < MAX_ROUTES:
                    self._unknown.add(id(route))  # not in the tree: never walk for it again
            if template is None:
                path = getattr(route, "path", None)
                template = path if isinstance(path, str) else ROUTE_UNMATCHED
        elif endpoint is not None and self._endpoints.get(id(endpoint)):
            template = self._endpoints[id(endpoint)]
        else:
            return ROUTE_UNMATCHED
        if template not in self._routes:
            if len(self._routes) >= MAX_ROUTES:
                return ROUTE_OTHER
            self._routes.add(template)
        return template

    def _observe(self, labels: tuple[str, str, str, str], seconds: float) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metrics.latency.labels(*labels)
        child.observe(seconds)

    # --- the request -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        app = scope.get("app")  # the outermost app: mounted apps set their own later
        method = scope.get("method", "GET")
        path_class = self.classes.find(scope.get("path", ""))
        type_ = path_class.name if path_class else self.classes.types[-1]
        policy = POLICIES[path_class.policy] if path_class else None
        if_none_match: bytes | None = None
        conditional = False
        for name, value in scope.get("headers", ()):
            if name in _CONDITIONAL:
                if name == b"if-none-match":
                    if_none_match = value
                    # ``*`` is a precondition on writes (RFC 9110 13.1.2), never a
                    # browser's revalidation: any client could send it to turn every
                    # ETagged answer into a 304 and the browser layer's hit rate to 100 %
                    conditional = conditional or value.strip() != b"*"
                else:
                    conditional = True
        reads = method in ("GET", "HEAD")
        mark = _Mark()
        token = _current.set(mark)
        status = 500
        swallow = False
        finished = False  # the last body message went out

        async def send_wrapper(message: Message) -> None:
            nonlocal status, swallow, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                if any(name.lower() == CACHE_HEADER for name, _ in headers):
                    mark.cached = mark.cached or any(
                        name.lower() == CACHE_HEADER and value.strip().lower() == b"hit"
                        for name, value in headers
                    )
                    headers = [(n, v) for n, v in headers if n.lower() != CACHE_HEADER]
                if reads and policy is not None and status in _POLICY_STATUSES:
                    headers = self._policy(headers, policy, type_)
                if (
                    self.answer_conditional
                    and reads
                    and status == 200
                    and if_none_match is not None
                ):
                    etag = next((v for n, v in headers if n.lower() == b"etag"), None)
                    if etag is not None and _etag_matches(if_none_match, etag):
                        status, swallow = 304, True
                        headers = [(n, v) for n, v in headers if n.lower() not in _DROPPED_ON_304]
                message = {**message, "status": status, "headers": headers}
            elif message["type"] == "http.response.body":
                finished = not message.get("more_body", False)
                if swallow:
                    if not finished:
                        return
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # an app that fails after its headers went out (a stream cut short) sent
            # its client a broken answer, whatever status the headers said
            if not finished:
                status = 500
            raise
        finally:
            _current.reset(token)
            seconds = time.perf_counter() - start
            labels = (
                self._route_label(app, scope.get("route"), scope.get("endpoint")),
                method if method in HTTP_METHODS else METHOD_OTHER,
                _status_class(status),
                "true" if mark.cached else "false",
            )
            self._observe(labels, seconds)
            if conditional and reads:
                if status == 304:
                    self.metrics.hits.labels(LAYER_BROWSER, type_).inc()
                elif status == 200:
                    self.metrics.misses.labels(LAYER_BROWSER, type_).inc()

    def _policy(
        self, headers: list[tuple[bytes, bytes]], policy: Policy, type_: str
    ) -> list[tuple[bytes, bytes]]:
        """Apply the class's headers where missing, then count what still breaks it."""
        cache_control = [v for n, v in headers if n.lower() == b"cache-control"]
        vary = [v for n, v in headers if n.lower() == b"vary"]
        applied = False
        if self.apply_policy:
            if not cache_control and policy.cache_control:
                headers.append((b"cache-control", _ENCODED[policy.name]))
                applied = True
            if policy.vary:
                have = {n.strip().lower() for v in vary for n in v.decode("latin-1").split(",")}
                lacking = (
                    [name for name in policy.vary if name not in have] if vary else policy.vary
                )
                if lacking and b"*" not in vary:
                    shown = ", ".join(n.title() for n in lacking).encode()
                    vary = [*vary, shown]
                    headers.append((b"vary", shown))
            if applied:
                return headers  # the policy's own Cache-Control: nothing to check
        key = (policy.name, tuple(cache_control), tuple(vary))
        broken = self._verdicts.get(key)
        if broken is None:
            joined_cc = b", ".join(cache_control).decode("latin-1") if cache_control else None
            joined_vary = b", ".join(vary).decode("latin-1") if vary else None
            broken = tuple(violations(policy, joined_cc, joined_vary))
            if len(self._verdicts) < _MAX_VERDICTS:  # apps send few distinct headers
                self._verdicts[key] = broken
        for rule in broken:
            self.metrics.violations.labels(type_, rule).inc()
        return headers
