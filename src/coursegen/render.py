"""Lesson Markdown to HTML that is safe to put in the page."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# Raw HTML in the model's Markdown is shown as text, never passed through.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

# No images: a model can only invent their addresses, and loading one would tell a
# stranger's server who is reading (the page's CSP refuses them as well).
_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "ol": {"start"},
}
_URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """Render CommonMark (plus tables) and sanitise the result with an allow-list.

    No style attributes survive: the page's Content-Security-Policy would refuse them.
    """
    html = _markdown.render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
