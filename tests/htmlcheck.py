"""Find anything executable in an HTML fragment, the way a browser would parse it."""

from __future__ import annotations

from html.parser import HTMLParser

_EXECUTABLE_TAGS = {
    "script", "iframe", "frame", "object", "embed", "svg", "math", "style", "link", "meta",
    "base", "form", "input", "button", "textarea", "select", "applet", "template",
}  # fmt: skip
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "data"}


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _EXECUTABLE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}>")
            if name in _URL_ATTRIBUTES and value is not None:
                scheme = "".join(value.split()).lower().split(":", 1)
                if len(scheme) == 2 and scheme[0] not in ("http", "https", "mailto"):
                    self.found.append(f"<{tag} {name}={value!r}>")


def executable_parts(html: str) -> list[str]:
    """Elements and attributes in `html` that could run code or load active content."""
    finder = _Finder()
    finder.feed(html)
    finder.close()
    return finder.found
