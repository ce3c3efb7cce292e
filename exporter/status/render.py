"""The page as HTML: the view model through autoescaping Jinja2 templates.

The templates (``templates/``, package data) place values and escape every one
of them; nothing here builds markup by hand.  Every placed value also passes
:func:`shown`, so no control or bidi character from Prometheus reaches the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from exporter.slo import SLO
from exporter.status.aggregate import Page
from exporter.status.view import REFRESH_SECONDS, clean, page_view

_BETWEEN_TAGS = re.compile(r">\s+<")


def spaceless(markup: str) -> Markup:
    """Drop the template's indentation between tags (text inside tags is kept)."""
    return Markup(_BETWEEN_TAGS.sub("><", str(markup)))


def shown(value: object) -> object:
    """Every value a template places, cleaned of control and bidi characters (the view
    already does so; this holds for any value a template change might add)."""
    if isinstance(value, Markup):
        return Markup(clean(str(value)))
    return clean(value) if isinstance(value, str) else value


ENV = Environment(
    loader=PackageLoader("exporter.status", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,  # the stylesheet ends in one, like any text file
    finalize=shown,
)
ENV.filters["spaceless"] = spaceless

#: the page's stylesheet (the WCAG contrast test reads its colours)
CSS: str = ENV.loader.get_source(ENV, "status.css")[0] if ENV.loader else ""


def render(
    page: Page,
    slo: SLO,
    prometheus: str,
    *,
    links: str | None = None,
    known: Sequence[str] = (),
) -> str:
    """The whole page; ``prometheus`` is the URL it was read from (the view redacts it
    for display), ``links`` the Prometheus URL its links lead to (default: the same;
    stripped of any credential), ``known`` the services the page has SLO files for."""
    view = page_view(page, slo, prometheus, links=links, known=known)
    return ENV.get_template("status.html").render(page=view, refresh=view.refresh)


def render_error(message: str) -> str:
    """The page when Prometheus cannot be read at all."""
    return ENV.get_template("error.html").render(message=message, refresh=REFRESH_SECONDS)
