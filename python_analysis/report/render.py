"""HTML and Markdown from the sections, through Jinja2 templates (HTML autoescaped, Markdown escaped by
the environment's ``finalize``), with the stylesheet inlined so the HTML is one self-contained file."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from .document import Section

TEMPLATES = "templates"


@dataclass(frozen=True)
class RunLine:
    """The one-line run description under the title."""

    line: str


class Raw(str):
    """Text the Markdown environment writes as it is (already made safe)."""


_MD_SPECIAL = re.compile(r"([\\`*|<>\[\]])")


def md_escape(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return ""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _fence(text: str) -> Raw:
    longest = max((len(m) for m in re.findall(r"~+", text)), default=0)
    fence = "~" * max(4, longest + 1)
    return Raw(f"{fence}\n{text.rstrip(chr(10))}\n{fence}")


def _link_target(href: str) -> str:
    return href.replace(">", "%3E").replace(" ", "%20").replace("\n", "%0A")


def _loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader(__package__, TEMPLATES)


@cache
def _html_env() -> jinja2.Environment:
    return jinja2.Environment(loader=_loader(), autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


@cache
def _md_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=_loader(), autoescape=False, finalize=md_escape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.globals.update(raw=Raw, fence=_fence, link_target=lambda h: Raw(_link_target(h)))
    return env


@cache
def stylesheet() -> str:
    return resources.files(__package__).joinpath(TEMPLATES, "style.css").read_text(encoding="utf-8")


def render_html(title: str, sections: Sequence[Section], images: Mapping[str, bytes],
                run: RunLine | None = None) -> str:
    encoded = {name: base64.b64encode(data).decode("ascii") for name, data in images.items()}
    return _html_env().get_template("report.html.j2").render(
        title=title, sections=sections, images=encoded, css=stylesheet(), run=run
    )


def render_markdown(title: str, sections: Sequence[Section], run: RunLine | None = None) -> str:
    text = _md_env().get_template("report.md.j2").render(title=title, sections=sections, run=run)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def render_template(name: str, **values: Any) -> str:
    """Another HTML page in the report's style (the checks page)."""
    return _html_env().get_template(name).render(css=stylesheet(), **values)
