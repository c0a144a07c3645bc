// The lesson page: title, description, its text (growing while it is written, then the
// server's final HTML), where the lesson stands (queued, being written, failed) and its
// quiz. It changes in place as the status changes. The author's tools open one at a
// time below the text: edit by hand, regenerate with instructions, versions.

import { h, setAttr, setText, spinner } from "../dom.js";
import { renderInto } from "../markdown.js";
import { courseHref, lessonHref } from "../router.js";
import { changed, contentOf, loadedOf } from "../store.js";
import { aboutParts, breakdown, money, moneyOptions, setParts, spent, tokenParts } from "./cost.js";
import { buildEditor, openEditor, updateEditor } from "./editor.js";
import { setHidden } from "./parts.js";
import { buildQuiz, updateQuiz } from "./quiz.js";
import { buildRegenerate } from "./regenerate.js";
import { buildVersions, updateVersions } from "./versions.js";

// How close to the bottom of the window the end of the text may be (in px) for the
// reader to count as following it: a reader who scrolled up further is left in place.
const FOLLOW_SLACK_PX = 48;
// Room kept below the end of the text when following it.
const FOLLOW_MARGIN_PX = 16;
// Elements a caret cannot go into (it goes after them).
const VOID = new Set(["BR", "HR", "IMG"]);

export function buildLesson(course, lesson, actions) {
  const parts = {
    crumb: h("a", { href: courseHref(course.id) }),
    place: h("span"),
    title: h("h1", { class: "page-title", tabindex: -1 }),
    description: h("p", { class: "description" }),
    stateBox: h("div", { class: "lesson-state", role: "status" }),
    // The text while it is written, rendered here from its Markdown; `body` then shows the
    // server's HTML of the finished lesson. Both are the same markup, so the swap does
    // not move a line. Not a live region: the status box announces the writing.
    draft: h("div", { class: "lesson-draft lesson-text", hidden: true }),
    body: h("div", { class: "lesson-body lesson-text" }),
    caret: h("span", { class: "caret", "aria-hidden": "true" }),
    shownHtml: null,
    shownDraft: null,
    scrollY: 0, // the window's scroll position after the last render of the growing text
    costLabel: h("span", { class: "cost-label" }),
    costAmount: h("span", { class: "cost-amount" }),
    costTokens: h("span", { class: "cost-tokens" }),
    provenance: h("p", { class: "lesson-provenance" }),
    pager: h("nav", { class: "pager", "aria-label": "Lessons of this course" }),
  };
  buildTools(parts, course, lesson, actions);
  parts.cost = h(
    "p",
    { class: "lesson-cost" },
    h("span", { class: "cost-part" }, parts.costLabel, parts.costAmount),
    parts.costTokens,
  );
  // How the lesson was made and what it cost: small print after its text, so that
  // nothing above the text moves when it changes.
  parts.about = h(
    "footer",
    { class: "lesson-about", "aria-label": "About this lesson", hidden: true },
    parts.cost,
    parts.provenance,
  );
  const article = h(
    "article",
    { class: "lesson-page", dataset: { lessonId: lesson.id } },
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      parts.crumb,
      h("span", { "aria-hidden": "true" }, " › "),
      parts.place,
    ),
    h("header", null, parts.title, parts.description),
    parts.editor,
    parts.draft,
    parts.body,
    // After the text: while it is written, "Writing…" sits below its growing end, and
    // goes away when it is done without moving the text above.
    parts.stateBox,
    parts.quiz,
    parts.about,
    h(
      "div",
      { class: "actions lesson-actions" },
      parts.edit,
      parts.regenerate,
      parts.versionsButton,
    ),
    parts.said,
    parts.regenerateForm,
    parts.versions,
    parts.pager,
  );
  article.parts = parts;
  article.actions = actions;
  return article;
}

export function updateLesson(article, course, lesson, state) {
  const { parts, actions } = article;
  const status = lesson.content_status;
  // After a hand edit, the text before it stays until the edited one has come.
  const html = status === "complete" ? contentOf(lesson, { edited: true }) : null;
  const draft = state.draft?.lessonId === lesson.id ? state.draft : null;
  // The text so far while it is written, and the final text until its HTML arrives.
  const draftText =
    draft?.text && (status === "generating" || (status === "complete" && html === null))
      ? draft.text
      : null;
  const writing = draftText !== null && status === "generating";
  // Measured before anything changes: is the reader at the end of the growing text, and
  // not on their way up from it (a smooth scroll may not be out of the slack yet)?
  const follow =
    draftText !== null && parts.shownDraft !== null && draftText !== parts.shownDraft
      ? window.scrollY >= parts.scrollY && endInView(parts.draft)
      : false;
  setAttr(article, "data-status", status);
  setText(parts.crumb, course.title);
  setText(parts.place, `Lesson ${lesson.position} of ${course.lessons.length}`);
  setText(parts.title, lesson.title);
  setText(parts.description, lesson.description);

  // The status box is rebuilt only when what it says changes, so it is announced once.
  const busy = state.busy.has(`lesson:${lesson.id}`);
  const shows = { html: html !== null, draft: draftText !== null, next: !!draft?.startingNext };
  const batch = course.mode === "batch";
  const said =
    {
      pending: shows.next,
      generating: batch && !shows.draft,
      complete: shows.html || shows.draft,
    }[status] ?? null;
  const key = JSON.stringify([status, lesson.content_error, said]);
  if (parts.stateBox.dataset.key !== key) {
    parts.stateBox.dataset.key = key;
    parts.stateBox.replaceChildren(
      ...stateContent(status, lesson, shows, batch, () =>
        actions.retryLesson(course.id, lesson.id),
      ),
    );
  }
  for (const button of parts.stateBox.querySelectorAll("button")) button.disabled = busy;

  if (parts.shownDraft !== draftText) {
    // Sanitised DOM nodes from the Markdown (markdown.js), never markup from here.
    if (draftText === null) parts.draft.replaceChildren();
    else renderInto(parts.draft, draftText);
    parts.shownDraft = draftText;
  }
  const editing = parts.panel === "edit";
  setHidden(parts.draft, draftText === null || editing);
  setAttr(parts.draft, "aria-busy", writing ? "true" : null);
  placeCaret(parts, writing);

  // The only HTML the page parses: the server's sanitised rendering of the lesson.
  if (parts.shownHtml !== html) {
    parts.body.innerHTML = html ?? "";
    parts.shownHtml = html;
  }
  setHidden(parts.body, html === null || editing);
  // How it is made: from its stream while it is written, from its own answer once done.
  const about = status === "generating" ? draft?.about : loadedOf(lesson)?.about;
  updateAbout(parts, lesson, about, state);
  // A finished lesson can be written again (a failed one has its Retry above).
  if (status !== "complete" && parts.panel === "regenerate") parts.panel = null;
  setHidden(parts.regenerate, status !== "complete");
  parts.regenerate.disabled = busy;
  updatePanels(parts, lesson, state);

  const index = course.lessons.indexOf(lesson);
  const previous = course.lessons[index - 1];
  const next = course.lessons[index + 1];
  const pagerKey = `${previous?.id}:${previous?.title}:${next?.id}:${next?.title}`;
  if (parts.pager.dataset.key !== pagerKey) {
    parts.pager.dataset.key = pagerKey;
    parts.pager.replaceChildren(
      previous
        ? h("a", { href: lessonHref(course.id, previous.id), rel: "prev" }, "← ", previous.title)
        : h("span"),
      next
        ? h("a", { href: lessonHref(course.id, next.id), rel: "next" }, next.title, " →")
        : h("span"),
    );
  }

  if (follow) keepEndInView(parts);
  parts.scrollY = window.scrollY;
}

/**
 * The author's tools, below the text, one open at a time: "Edit lesson" (its editor
 * takes the text's place), "Regenerate this lesson" (with instructions) and "Versions";
 * and the quiz under the text.
 */
function buildTools(parts, course, lesson, actions) {
  Object.assign(parts, {
    edit: h(
      "button",
      { type: "button", class: "button", "aria-expanded": "false" },
      "Edit lesson",
    ),
    regenerate: h(
      "button",
      { type: "button", class: "button", "aria-expanded": "false" },
      "Regenerate this lesson",
    ),
    versionsButton: h(
      "button",
      { type: "button", class: "button", "aria-expanded": "false" },
      "Versions",
    ),
    // What the author's last action did, said once: "Saved.", "Writing it again…".
    said: h("p", { class: "lesson-said", role: "status" }),
    panel: null, // the tool open: "edit", "regenerate", "versions" or null
  });
  const close = (button) => () => {
    parts.panel = null;
    changed();
    button.focus();
  };
  parts.editor = buildEditor(lesson, actions, {
    onClose: close(parts.edit),
    onSaved: (saved) => {
      parts.panel = null;
      changed();
      setText(parts.said, saved ? "Saved your changes." : "Nothing to save: no changes.");
      parts.title.focus({ preventScroll: true });
    },
  });
  parts.versions = buildVersions(lesson, actions, { onClose: close(parts.versionsButton) });
  parts.regenerateForm = buildRegenerate(course, lesson, actions, {
    onClose: close(parts.regenerate),
    onSent: () => {
      parts.panel = null;
      changed();
      setText(parts.said, "Writing it again…");
      parts.title.focus({ preventScroll: true });
    },
  });
  parts.quiz = buildQuiz(course, lesson, actions);
  const toggle = (name, open) => () => {
    const opening = parts.panel !== name;
    parts.panel = opening ? name : null;
    setText(parts.said, "");
    changed();
    if (opening) queueMicrotask(open);
  };
  parts.edit.addEventListener("click", toggle("edit", () => openEditor(parts.editor)));
  parts.regenerate.addEventListener(
    "click",
    toggle("regenerate", () => parts.regenerateForm.open()),
  );
  parts.versionsButton.addEventListener(
    "click",
    toggle("versions", () => parts.versions.open()),
  );
  parts.edit.setAttribute("aria-controls", parts.editor.id);
  parts.regenerate.setAttribute("aria-controls", parts.regenerateForm.id);
  parts.versionsButton.setAttribute("aria-controls", parts.versions.id);
}

/** The author's tools: one open at a time, each button saying whether its tool is open. */
function updatePanels(parts, lesson, state) {
  const { panel } = parts;
  for (const [name, button, el] of [
    ["edit", parts.edit, parts.editor],
    ["regenerate", parts.regenerate, parts.regenerateForm],
    ["versions", parts.versionsButton, parts.versions],
  ]) {
    setAttr(button, "aria-expanded", String(panel === name));
    setAttr(button, "data-open", panel === name ? "" : null);
    if (panel !== name) setHidden(el, true);
  }
  // While the text is edited, its quiz (about the text before) is out of the way.
  if (panel === "edit") setHidden(parts.quiz, true);
  else updateQuiz(parts.quiz, lesson, state);
  updateEditor(parts.editor, lesson, state);
  updateVersions(parts.versions, lesson, state);
  parts.regenerateForm.update(lesson, state);
}

/** The small print: what the lesson cost and how it was made; nothing while it is queued. */
function updateAbout(parts, lesson, about, state) {
  const status = lesson.content_status;
  const options = moneyOptions(state);
  const costs = status !== "pending" && spent(lesson.usage);
  setHidden(parts.cost, !costs);
  if (costs) {
    const known = lesson.usage.cost_usd !== null;
    const label = status === "generating" ? "Cost so far" : "Cost";
    setText(parts.costLabel, known ? `${label}: ` : "");
    setText(parts.costAmount, known ? money(lesson.usage.cost_usd, options) : "Cost unknown");
    setParts(parts.costTokens, tokenParts(lesson.usage), { lead: true });
    setAttr(parts.cost, "title", breakdown(lesson.usage, options, label));
  }
  const made = status === "pending" ? [] : aboutParts(about, status);
  setParts(parts.provenance, made);
  setHidden(parts.provenance, !made.length);
  setHidden(parts.about, !costs && !made.length);
}

/** Whether the end of `el` is in the window (or above it): the reader is at the end. */
function endInView(el) {
  return el.getBoundingClientRect().bottom <= window.innerHeight + FOLLOW_SLACK_PX;
}

/** Scroll just enough to show the end of the text and the status line below it. */
function keepEndInView(parts) {
  const last = parts.stateBox.childElementCount ? parts.stateBox : parts.draft;
  const overflow = last.getBoundingClientRect().bottom + FOLLOW_MARGIN_PX - window.innerHeight;
  if (overflow > 0) window.scrollBy({ top: overflow, behavior: "instant" });
}

/**
 * The caret at the end of the growing text: inside its last element (the paragraph, list
 * item, cell or code block the text ends in), so it sits right after the last word.
 *
 * It is put back after every render, which restarts its blinking: like a text editor's
 * caret, it stays lit while the text flows and blinks when the writing pauses.
 */
function placeCaret(parts, writing) {
  const { caret, draft } = parts;
  if (!writing) {
    caret.remove();
    return;
  }
  let host = draft;
  for (;;) {
    let last = host.lastChild;
    while (last && last.nodeType === Node.TEXT_NODE && !last.data.trim()) {
      last = last.previousSibling;
    }
    if (last === caret) last = last.previousSibling;
    if (!last || last.nodeType !== Node.ELEMENT_NODE || VOID.has(last.tagName)) break;
    host = last;
  }
  if (host.lastChild !== caret) host.append(caret);
}

function stateContent(status, lesson, shows, batch, retry) {
  switch (status) {
    case "pending":
      return [
        h(
          "p",
          { class: "state-line" },
          h("span", { class: "status-marker", "data-status": "pending", "aria-hidden": "true" }),
          shows.next ? "Starting next…" : "Queued",
        ),
        h(
          "p",
          { class: "hint" },
          shows.next
            ? "Queued first, because you opened it: the next free writer takes it."
            : "It will be written as soon as a writer is free.",
        ),
      ];
    case "generating":
      if (batch && !shows.draft) {
        return [
          h("p", { class: "state-line" }, spinner(), "Waiting for its batch…"),
          h(
            "p",
            { class: "hint" },
            "This course was sent as one Message Batch (economy mode): the lesson appears ",
            "when the batch ends, which can take up to 24 hours.",
          ),
        ];
      }
      return [h("p", { class: "state-line" }, spinner(), "Writing this lesson…")];
    case "error":
      return [
        h(
          "p",
          { class: "state-line error-text" },
          h("strong", null, "This lesson could not be written: "),
          lesson.content_error ?? "unknown error",
        ),
        h("button", { type: "button", class: "button primary", onclick: retry }, "Retry"),
      ];
    default:
      // Complete: its final HTML is on its way, unless the text is shown already.
      return shows.html || shows.draft
        ? []
        : [h("p", { class: "state-line" }, spinner(), "Loading the lesson…")];
  }
}
