// Lesson Markdown to safe HTML in the page, for text that is still being written.
//
// It mirrors src/coursegen/render.py so that a live render and the server's final HTML
// are the same markup: markdown-it in "commonmark" mode without raw HTML or linkify, plus
// tables and strikethrough, then DOMPurify with nh3's allow-list (tags, attributes per
// tag, http/https/mailto or relative URLs, rel on every link, no comments, no images).
// The two libraries are vendored classic scripts (static/vendor/), which define
// window.markdownit and window.DOMPurify. This module loads them, and is ready once they
// are: only the pages that show Markdown import it, after the page's first paint (a
// library of courses does not wait for 150 KB of scripts). Should they fail to load, the
// text shows as plain text.

const VENDOR = ["markdown-it-14.3.3.min.js", "purify-3.5.0.min.js"];

function loadScript(name) {
  return new Promise((resolve) => {
    const script = document.createElement("script");
    // Next to this module, wherever a proxy serves the page.
    script.src = new URL(`../vendor/${name}`, import.meta.url).href;
    script.onload = resolve;
    script.onerror = resolve; // see load(): plain text rather than no text
    document.head.append(script);
  });
}

if (typeof window.markdownit !== "function" || typeof window.DOMPurify !== "function") {
  await Promise.all(VENDOR.map(loadScript));
}

// The same lists as render.py's _TAGS, _ATTRIBUTES, _URL_SCHEMES and link_rel.
const TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
  "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ATTRIBUTES = new Map([
  ["a", new Set(["href", "title"])],
  ["code", new Set(["class"])],
  ["ol", new Set(["start"])],
]);
const PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const LINK_REL = "noopener noreferrer nofollow";

const CONFIG = Object.freeze({
  ALLOWED_TAGS: TAGS,
  // Narrowed to the right tags by the uponSanitizeAttribute hook below.
  ALLOWED_ATTR: [...new Set([...ATTRIBUTES.values()].flatMap((names) => [...names]))],
  // DOMPurify's own URL check, with only http, https and mailto as schemes; anything
  // without a scheme (relative paths, #fragments) passes, as it does in nh3.
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.\-]+(?:[^a-z+.\-:]|$))/i,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOW_SELF_CLOSE_IN_ATTR: false,
  SAFE_FOR_XML: true,
  KEEP_CONTENT: true,
  WHOLE_DOCUMENT: false,
});

// A URL that starts with a scheme (after the trimming the URL parser does).
const SCHEME = /^[a-z][a-z0-9+.\-]*:/i;

/**
 * Whether nh3 keeps this href: it has no scheme (relative, kept as nh3 keeps it), or it
 * parses as a URL whose scheme is http, https or mailto. nh3's url crate and the browser
 * both follow the WHATWG URL standard, nearly: Chromium accepts a few hosts the crate
 * refuses (`http://a%20b`), so such a broken link keeps its href here only. This is
 * checked as well as DOMPurify's own pattern: a link survives only if both keep it.
 */
function keepsUrl(value) {
  const compact = value
    .replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "")
    .replace(/[\t\n\r]/g, "");
  if (!SCHEME.test(compact)) return true;
  try {
    return PROTOCOLS.has(new URL(compact).protocol);
  } catch {
    return false;
  }
}

function dropStyle(token) {
  if (token.attrs) token.attrs = token.attrs.filter(([name]) => name !== "style");
  for (const child of token.children ?? []) dropStyle(child);
}

let engine = null;

/**
 * markdown-it and a DOMPurify instance of our own, so the hooks touch nobody else; null
 * if the vendored scripts could not be loaded.
 */
function load() {
  if (engine) return engine;
  const { markdownit, DOMPurify } = window;
  if (typeof markdownit !== "function" || typeof DOMPurify !== "function") return null;
  const markdown = markdownit("commonmark", { html: false, linkify: false }).enable([
    "table",
    "strikethrough",
  ]);
  // Table alignment comes as style attributes, which the sanitiser drops anyway (as nh3
  // does); drop them before parsing, since even parsing one reports a CSP violation.
  markdown.core.ruler.push("drop_style_attributes", (state) => {
    for (const token of state.tokens) dropStyle(token);
  });
  const purify = DOMPurify(window);
  if (!purify.isSupported) throw new Error("DOMPurify cannot sanitise in this browser");
  purify.addHook("uponSanitizeAttribute", (node, data) => {
    const allowed = ATTRIBUTES.get(node.nodeName.toLowerCase());
    if (!allowed?.has(data.attrName)) data.keepAttr = false;
    else if (data.attrName === "href" && !keepsUrl(data.attrValue)) data.keepAttr = false;
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName.toLowerCase() === "a") node.setAttribute("rel", LINK_REL);
  });
  engine = { markdown, purify };
  return engine;
}

/** Markdown (complete or cut off anywhere) to sanitised HTML, as a string. */
export function renderMarkdown(text) {
  const loaded = load();
  if (!loaded) throw new Error("markdown.js: vendor/markdown-it and vendor/purify did not load");
  const { markdown, purify } = loaded;
  return purify.sanitize(markdown.render(String(text ?? "")), CONFIG);
}

/** Replace `element`'s content with the rendered Markdown, as sanitised DOM nodes. */
export function renderInto(element, text) {
  const loaded = load();
  if (!loaded) {
    const paragraph = document.createElement("p");
    paragraph.textContent = String(text ?? "");
    element.replaceChildren(paragraph);
    return;
  }
  const { markdown, purify } = loaded;
  const fragment = purify.sanitize(markdown.render(String(text ?? "")), {
    ...CONFIG,
    RETURN_DOM_FRAGMENT: true,
  });
  element.replaceChildren(fragment);
}
