"""The page's own Markdown renderer (static/js/markdown.js) matches the server's, safely.

Lesson text streams in as raw Markdown while it is written, so the page renders it
itself; the server's final HTML then replaces that render. Both must be the same markup
(or the lesson jumps when it is replaced), and the page's must be as inert as nh3's.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from coursegen.providers.demo import DemoProvider
from coursegen.render import render_markdown
from tests.browser.conftest import StartLive, Ui
from tests.htmlcheck import executable_parts
from tests.test_security import XSS_PAYLOADS

STATIC = Path(__file__).resolve().parents[2] / "static"
VENDOR = STATIC / "vendor"
# The classic scripts js/markdown.js loads (the page loads that module after its first paint).
VENDOR_SCRIPTS = ["/vendor/markdown-it-14.3.3.min.js", "/vendor/purify-3.5.0.min.js"]

RENDER_ALL = """async (texts) => {
  const m = await import("/js/markdown.js");
  return texts.map((text) => m.renderMarkdown(text));
}"""

# Lesson-like Markdown: everything a model writes, and the corners of CommonMark.
DOCUMENTS = [
    "",
    "Just one paragraph.",
    "# Heading 1\n\n## Heading 2\n\n### Heading 3\n\n#### H4\n\n##### H5\n\n###### H6",
    "Setext heading\n==============\n\nAnother\n-------\n\nText.",
    "# Heading with `code` and *emphasis* #\n\nBody.",
    "*emphasis*, _also_, **strong**, __also strong__, ***both***, and *nested **strong***.",
    "snake_case_words and 2*3*4 and a * lone star and **unclosed",
    "- one\n- two\n- three",
    "* star\n+ plus\n- dash",
    "1. first\n2. second\n3. third",
    "3. starts at three\n4. four\n\n0. starts at zero",
    "- outer\n  - inner\n    - innermost\n  - inner again\n- outer again",
    "1. step\n   - detail\n   - detail\n2. step\n\n   with a second paragraph\n\n3. last",
    "- loose item\n\n- another loose item\n\n  continued",
    "- [ ] not a task list in CommonMark\n- [x] done",
    "```python\ndef f(x):\n    return x < 1 and x > 0\n```",
    "```js\nconst a = `template ${x}`;\n```\n\n```\nno language\n```",
    "~~~bash title=example\necho 'tilde fence' && ls | grep x\n~~~",
    "````\n```\nnested fence\n```\n````",
    "    indented code\n    block\n\nafter",
    "Inline `code`, ``code with ` backtick``, and `<b>not bold</b>`.",
    "| Name | Value |\n|------|------:|\n| a | 1 |\n| b | `x | y` |",
    "| Left | Center | Right |\n|:-----|:------:|------:|\n| l | c | r |\n"
    "| **b** | *i* | [l](https://e.com) |",
    "| only header |\n|---|",
    'A [link](https://example.com) and [one with title](https://example.com/a?b=1&c=2 "Title").',
    "[relative](/lessons/1) and [fragment](#part-2) and [page](other.html) and [up](../x).",
    "[mail me](mailto:someone@example.com) and <https://autolink.example/path?q=1>.",
    "<someone@example.com> is an email autolink.",
    "[ftp](ftp://files.example/a) [tel](tel:+123) [custom](foo:bar) [caps](HTTPS://E.COM/A) "
    "[protocol-relative](//cdn.example/x) [colon later](a/b:c) [query](?q=1)",
    '[ref link][ref] and [another] one.\n\n[ref]: https://example.com/ref "Ref title"\n'
    "[another]: http://example.org",
    "[parens](https://en.wikipedia.org/wiki/Foo_(bar)) and [spaces](<https://e.com/a b>)",
    "[unicode host](https://bücher.example/straße) and [emoji path](https://e.com/😀)",
    "> a quote\n> over two lines\n>\n> > nested quote\n\n> - list in quote\n> - two",
    "Above\n\n---\n\nBetween\n\n***\n\n___\n\nBelow",
    "Line one  \nline two with hard break\\\nline three\nsoft break",
    "~~struck~~ and ~single tilde~ and ~~**strong struck**~~",
    "&copy; &amp; &lt;tag&gt; &#169; &#x1F600; &nbsp;non-breaking &unknown; AT&T",
    "Quotes \"double\" and 'single' -- dashes --- and ... dots (c) (tm)",
    "Unicode: café, naïve, 日本語, Ελληνικά, עברית, emoji 🎉👩\u200d💻, combining e\u0301.",
    "Escapes: \\*not emphasis\\*, \\# not heading, \\[not link\\], \\\\ backslash, \\` tick",
    "<div>raw html block</div>\n\n<span onclick=x>inline</span> and <!-- comment -->",
    "An image ![alt text](https://example.com/a.png) in a sentence.",
    "Tabs\tinside\ttext and trailing spaces   \n\n\tindented by tab",
    "# Lesson 3: Fermentation\n\nYeast eats **sugar** and makes *CO₂*.\n\n## Steps\n\n"
    "1. Mix flour and water.\n2. Wait 30 min (the *autolyse*).\n3. Add:\n   - salt\n   - starter\n"
    "\n> Tip: keep it at 24 °C.\n\n| Hour | Rise |\n|---:|---|\n| 1 | 10% |\n| 4 | 50% |\n\n"
    "```text\nbulk: 4-6 h\n```\n\nSee [the guide](https://example.com/guide).",
]

# Documents whose every prefix is rendered: a lesson as it streams in.
STREAMED = [
    DOCUMENTS[-1],
    "\n\n".join(XSS_PAYLOADS),
    "| a | b |\n|---|---|\n| `x` | [y](https://e.com \"t\") |\n\n```py\nprint('<b>')\n```\n"
    "- [link](javascript:alert(1))\n- <script>alert(1)</script>\n\n> ~~done~~ **ok**",
]


class _Canonical(HTMLParser):
    """HTML as a list of events: attributes sorted, whitespace between tags dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[Any, ...]] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(sorted(attrs, key=lambda a: a[0]))))
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))
        self.pre -= tag == "pre"

    def handle_data(self, data: str) -> None:
        if self.pre or data.strip():
            self.events.append(("text", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))


def canonical(html: str) -> list[tuple[Any, ...]]:
    parser = _Canonical()
    parser.feed(html)
    parser.close()
    # Adjacent text pieces are one text node, however the parser split them.
    merged: list[tuple[Any, ...]] = []
    for event in parser.events:
        if event[0] == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + event[1])
        else:
            merged.append(event)
    return merged


async def open_page(ui: Ui, start_live: StartLive) -> None:
    """The real page, served by the app, with the vendored scripts it will load."""
    live = await start_live(provider=DemoProvider(delay=0.01))
    await ui.open(live.url)
    for src in VENDOR_SCRIPTS:
        await ui.page.add_script_tag(url=src)


async def render_in_page(ui: Ui, texts: list[str]) -> list[str]:
    rendered: list[str] = await ui.page.evaluate(RENDER_ALL, texts)
    return rendered


def test_vendored_scripts_are_versioned_and_licensed() -> None:
    scripts = sorted(p.name for p in VENDOR.glob("*.min.js"))
    assert scripts == sorted(Path(s).name for s in VENDOR_SCRIPTS)
    for name in scripts:
        assert (VENDOR / name.replace(".min.js", ".LICENSE")).is_file(), name
    assert len(DOCUMENTS) >= 40


async def test_the_page_renders_markdown_exactly_as_the_server_does(
    ui: Ui, start_live: StartLive
) -> None:
    await open_page(ui, start_live)
    rendered = await render_in_page(ui, DOCUMENTS)
    differences = [
        f"{text!r}\n  server: {render_markdown(text)!r}\n  page:   {html!r}"
        for text, html in zip(DOCUMENTS, rendered, strict=True)
        if canonical(html) != canonical(render_markdown(text))
    ]
    assert differences == [], "\n".join(differences)


async def test_hostile_markdown_renders_to_nothing_executable_in_the_page(
    ui: Ui, start_live: StartLive
) -> None:
    await open_page(ui, start_live)
    texts = [f"# Lesson\n\n{payload}\n\nAfter." for payload in XSS_PAYLOADS]
    rendered = await render_in_page(ui, texts)
    for payload, html in zip(XSS_PAYLOADS, rendered, strict=True):
        assert executable_parts(html) == [], payload
        assert "After." in html, payload
        # Not only inert: the same markup as the server's.
        assert canonical(html) == canonical(render_markdown(f"# Lesson\n\n{payload}\n\nAfter."))


async def test_every_prefix_of_a_streaming_lesson_renders_safely(
    ui: Ui, start_live: StartLive
) -> None:
    await open_page(ui, start_live)
    prefixes = [text[:end] for text in STREAMED for end in range(0, len(text) + 7, 7)]
    rendered = await render_in_page(ui, prefixes)  # any exception fails the evaluate
    assert len(rendered) == len(prefixes)
    for prefix, html in zip(prefixes, rendered, strict=True):
        assert executable_parts(html) == [], prefix
        # And each is what the server would make of the same text, so nothing jumps when
        # the next chunk (or the final HTML) replaces it.
        assert canonical(html) == canonical(render_markdown(prefix)), prefix


async def test_render_into_puts_sanitised_nodes_in_the_element(
    ui: Ui, start_live: StartLive
) -> None:
    await open_page(ui, start_live)
    text = "\n\n".join([DOCUMENTS[-1], *XSS_PAYLOADS])
    result = await ui.page.evaluate(
        """async (text) => {
          const m = await import("/js/markdown.js");
          const el = document.createElement("div");
          document.body.append(el);
          m.renderInto(el, text);
          m.renderInto(el, text);  // a second chunk replaces, never appends
          await new Promise((resolve) => setTimeout(resolve, 100));  // handlers would run
          return {
            html: el.innerHTML,
            string: m.renderMarkdown(text),
            links: [...el.querySelectorAll("a")].map((a) => a.getAttribute("rel")),
            pwned: window.__pwned ?? null,
          };
        }""",
        text,
    )
    assert result["pwned"] is None
    assert result["html"] == result["string"]
    assert canonical(result["html"]) == canonical(render_markdown(text))
    assert executable_parts(result["html"]) == []
    assert result["links"] and set(result["links"]) == {"noopener noreferrer nofollow"}
