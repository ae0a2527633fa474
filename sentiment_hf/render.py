"""Rendering shared by the pages and the model card: the one place Jinja environments are built.

Templates live in ``sentiment_hf/templates`` and load through :mod:`importlib.resources`, so they
are found wherever the package is installed (a wheel, a zip). :func:`render` picks the
environment from the template's name:

* ``*.html.j2`` — HTML: autoescape on; every ``{{ value }}`` is escaped as :func:`html.escape`
  (quotes too, so it is safe inside attributes) unless it is markup Jinja made (a macro's or a
  ``{% set %}`` block's output); block tags take their line with them, and the file's last
  newline is kept. Filters: ``fixed`` and ``compact`` (numbers), ``png_data_uri`` (images).
* ``*.md`` — Markdown: Jinja's defaults, nothing escaped; what ``huggingface_hub``'s
  ``ModelCard.from_template`` renders with.

Imports only the standard library and jinja2: it sits in the lowest layer.
"""

from __future__ import annotations

import base64
import html
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import jinja2

Kind = Literal["html", "markdown"]
#: Template name suffix -> the environment that renders it.
KIND_BY_SUFFIX: dict[str, Kind] = {".html.j2": "html", ".md": "markdown"}


def fixed(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``n/a`` for a missing value."""
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def compact(value: float) -> str:
    """A number in at most 4 significant digits; scientific notation when very small or large."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def png_data_uri(image: str | Path | bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes or of a PNG file."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class _Escaped(str):
    """Text already escaped for HTML; autoescape passes anything with ``__html__`` through."""

    __slots__ = ()

    def __html__(self) -> str:
        return self


def _escape_html(value: Any) -> Any:
    """Each ``{{ value }}`` of an HTML template: markup as it is, anything else escaped."""
    if hasattr(value, "__html__"):
        return value
    return _Escaped(html.escape(str(value), quote=True))


def _package_template(name: str) -> str | None:
    """The text of ``sentiment_hf/templates/<name>``; None when there is no such template."""
    path = resources.files(__package__).joinpath("templates", name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


@cache
def environment(kind: Kind) -> jinja2.Environment:
    """The Jinja environment of ``kind`` (see the module docstring), built once."""
    loader = jinja2.FunctionLoader(_package_template)
    if kind == "markdown":
        return jinja2.Environment(loader=loader, autoescape=False)
    if kind != "html":
        raise ValueError(f"no Jinja environment for {kind!r}; use one of {get_args(Kind)}")
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        finalize=_escape_html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fixed=fixed, compact=compact, png_data_uri=png_data_uri)
    return env


def render(template: str, /, **context: Any) -> str:
    """The package template ``template`` rendered with ``context`` (any names, ``template`` and
    ``name`` too); its suffix picks the environment."""
    for suffix, kind in KIND_BY_SUFFIX.items():
        if template.endswith(suffix):
            return environment(kind).get_template(template).render(**context)
    raise ValueError(f"{template!r} is not a template name ending in one of {list(KIND_BY_SUFFIX)}")
