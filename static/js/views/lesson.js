// The lesson page: title, description and either where the lesson stands (queued,
// being written, failed) or its content. It changes in place as the status changes.

import { h, setAttr, setText, spinner } from "../dom.js";
import { courseHref, lessonHref } from "../router.js";
import { contentOf } from "../store.js";
import { setHidden } from "./parts.js";

export function buildLesson(course, lesson, actions) {
  const parts = {
    crumb: h("a", { href: courseHref(course.id) }),
    place: h("span"),
    title: h("h1", { class: "page-title", tabindex: -1 }),
    description: h("p", { class: "description" }),
    stateBox: h("div", { class: "lesson-state", role: "status" }),
    body: h("div", { class: "lesson-body" }),
    shownHtml: null,
    regenerate: h(
      "button",
      { type: "button", class: "button", onclick: () => actions.retryLesson(course.id, lesson.id) },
      "Regenerate this lesson",
    ),
    pager: h("nav", { class: "pager", "aria-label": "Lessons of this course" }),
  };
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
    parts.stateBox,
    parts.body,
    h("div", { class: "actions lesson-actions" }, parts.regenerate),
    parts.pager,
  );
  article.parts = parts;
  article.actions = actions;
  return article;
}

export function updateLesson(article, course, lesson, state) {
  const { parts, actions } = article;
  const status = lesson.content_status;
  const html = status === "complete" ? contentOf(lesson) : null;
  setAttr(article, "data-status", status);
  setText(parts.crumb, course.title);
  setText(parts.place, `Lesson ${lesson.position} of ${course.lessons.length}`);
  setText(parts.title, lesson.title);
  setText(parts.description, lesson.description);

  // The status box is rebuilt only when what it says changes, so it is announced once.
  const busy = state.busy.has(`lesson:${lesson.id}`);
  const key = JSON.stringify([status, lesson.content_error, html === null]);
  if (parts.stateBox.dataset.key !== key) {
    parts.stateBox.dataset.key = key;
    parts.stateBox.replaceChildren(
      ...stateContent(status, lesson, html, () => actions.retryLesson(course.id, lesson.id)),
    );
  }
  for (const button of parts.stateBox.querySelectorAll("button")) button.disabled = busy;

  // The only HTML the page parses: the server's sanitised rendering of the lesson.
  if (parts.shownHtml !== html) {
    parts.body.innerHTML = html ?? "";
    parts.shownHtml = html;
  }
  setHidden(parts.body, html === null);
  setHidden(parts.regenerate.parentElement, status !== "complete");
  parts.regenerate.disabled = busy;

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
}

function stateContent(status, lesson, html, retry) {
  switch (status) {
    case "pending":
      return [
        h(
          "p",
          { class: "state-line" },
          h("span", { class: "status-marker", "data-status": "pending", "aria-hidden": "true" }),
          "Queued",
        ),
        h("p", { class: "hint" }, "It will be written as soon as a writer is free."),
      ];
    case "generating":
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
      return html === null
        ? [h("p", { class: "state-line" }, spinner(), "Loading the lesson…")]
        : [];
  }
}
