// The course page: what it is about, how far its writing is, what can be done with it.

import { h, setAttr, setText } from "../dom.js";
import { breakdown, money, moneyOptions, setParts, spent, tokenParts } from "./cost.js";
import { buildExport, updateExport } from "./export.js";
import { buildOutline, updateOutline } from "./outline.js";
import {
  describeOptions,
  jobStatusText,
  progressText,
  setHidden,
  updateProgress,
} from "./parts.js";

/** Build the page's elements; `update` then keeps them in step with the state. */
export function buildCourse(course, actions) {
  const byId = (fn) => () => fn(course.id);
  const parts = {
    topic: h("span"),
    title: h("h1", { class: "page-title", tabindex: -1 }),
    description: h("p", { class: "description" }),
    // How it was asked to be written: "Beginner · Deutsch · with quizzes".
    options: h("span"),
    instructions: h("span"),
    bar: h("progress", { max: 100, value: 0, "aria-labelledby": "course-progress-text" }),
    progress: h("p", {
      id: "course-progress-text",
      class: "progress-text",
      "aria-live": "polite",
      "aria-atomic": "true",
    }),
    status: h("p", { class: "job-status" }),
    costLabel: h("span", { class: "cost-label" }),
    costAmount: h("span", { class: "cost-amount" }),
    costTokens: h("span", { class: "cost-tokens" }),
    // Economy mode: nothing to watch for hours, and the page says why.
    batchNote: h(
      "p",
      { class: "batch-note", hidden: true },
      h("strong", null, "Waiting for its batch. "),
      "This course was sent as one Message Batch (economy mode, half price): its lessons ",
      "appear when the batch ends, which can take up to 24 hours.",
    ),
    estimateText: h("span", { class: "estimate-text" }),
    cancel: h(
      "button",
      { type: "button", class: "button", onclick: byId(actions.cancel) },
      "Cancel generation",
    ),
    retry: h("button", { type: "button", class: "button", onclick: byId(actions.retryJob) }),
    remove: h(
      "button",
      { type: "button", class: "button danger", onclick: byId(actions.askDelete) },
      "Delete course…",
    ),
    confirmText: h("p"),
    confirmYes: h(
      "button",
      { type: "button", class: "button danger", onclick: byId(actions.confirmDelete) },
      "Delete",
    ),
    outline: buildOutline(course, actions),
    exportMenu: buildExport(course),
  };
  parts.optionsLine = h(
    "p",
    { class: "course-options" },
    h("span", { class: "visually-hidden" }, "Written for: "),
    parts.options,
  );
  parts.instructionsLine = h(
    "p",
    { class: "course-instructions", hidden: true },
    h("strong", null, "Instructions: "),
    parts.instructions,
  );
  parts.cost = h(
    "p",
    { class: "course-cost" },
    h("span", { class: "cost-part" }, parts.costLabel, parts.costAmount),
    parts.costTokens,
  );
  parts.estimate = h(
    "div",
    { class: "estimate", role: "note", hidden: true },
    parts.estimateText,
    h(
      "button",
      {
        type: "button",
        class: "notice-dismiss",
        "aria-label": "Dismiss the estimate",
        onclick: actions.dismissEstimate,
      },
      "×",
    ),
  );
  parts.job = h(
    "section",
    { class: "job", "aria-label": "Progress" },
    parts.bar,
    parts.progress,
    parts.status,
    parts.batchNote,
    parts.cost,
    parts.estimate,
  );
  parts.confirm = h(
    "div",
    { class: "confirm", role: "group", "aria-label": "Confirm deletion", hidden: true },
    parts.confirmText,
    h(
      "div",
      { class: "actions" },
      parts.confirmYes,
      h("button", { type: "button", class: "button", onclick: actions.keep }, "Keep it"),
    ),
  );
  const article = h(
    "article",
    { class: "course-page", dataset: { courseId: course.id } },
    h(
      "header",
      null,
      h("p", { class: "eyebrow" }, "Course on ", parts.topic),
      parts.title,
      parts.description,
      parts.optionsLine,
      parts.instructionsLine,
    ),
    parts.job,
    h("div", { class: "actions" }, parts.cancel, parts.retry, parts.exportMenu, parts.remove),
    parts.confirm,
    parts.outline,
  );
  article.parts = parts;
  return article;
}

export function updateCourse(article, course, state) {
  const parts = article.parts;
  setText(parts.topic, course.topic);
  setText(parts.title, course.title);
  setText(parts.description, course.description);
  setText(parts.options, describeOptions(course));
  setText(parts.instructions, course.instructions);
  setHidden(parts.instructionsLine, !course.instructions);

  const job = course.job;
  setHidden(parts.job, !job);
  setHidden(parts.cancel, job?.status !== "running");
  parts.cancel.disabled = state.busy.has(`cancel:${course.id}`);
  if (job) {
    updateProgress(parts.bar, job);
    setText(parts.progress, progressText(job));
    setText(parts.status, jobStatusText(job));
    setAttr(parts.status, "data-status", job.status);
  }
  const waiting = course.lessons?.some((lesson) => lesson.content_status === "generating");
  setHidden(parts.batchNote, !(course.mode === "batch" && job?.status === "running" && waiting));

  // What it cost: the running total while it is written, live from the job's events.
  const options = moneyOptions(state);
  const usage = course.usage;
  setHidden(parts.cost, !usage);
  if (usage) {
    const known = usage.cost_usd !== null;
    const label = job?.status === "running" ? "Spent so far: " : "Cost: ";
    setText(parts.costLabel, known ? label : "");
    setText(parts.costAmount, known ? money(usage.cost_usd, options) : "Cost unknown");
    setParts(parts.costTokens, spent(usage) ? tokenParts(usage) : [], { lead: true });
    setAttr(parts.cost, "title", breakdown(usage, options, label.slice(0, -2)));
  }
  const estimate = state.estimate?.courseId === course.id ? state.estimate : null;
  setHidden(parts.estimate, !estimate);
  if (estimate) {
    setText(
      parts.estimateText,
      estimate.maxCostUsd === null
        ? "Its cost cannot be estimated: the model has no known price."
        : `At most ${money(estimate.maxCostUsd, options)} for its lessons (at their token limits).`,
    );
  }

  const failed = course.lessons?.filter((lesson) => lesson.content_status === "error").length ?? 0;
  const queued = course.lessons?.some((lesson) => lesson.content_status === "pending");
  const resumable = job?.status === "cancelled" && queued;
  setHidden(parts.retry, !(job && job.status !== "running" && (failed || resumable)));
  setText(
    parts.retry,
    failed
      ? `Retry ${failed === 1 ? "the failed lesson" : `${failed} failed lessons`}`
      : "Resume generation",
  );
  parts.retry.disabled = state.busy.has(`retry:${course.id}`);

  const confirming = state.confirmDelete === course.id;
  setHidden(parts.confirm, !confirming);
  setText(
    parts.confirmText,
    `Delete “${course.title}” and all its lessons? This cannot be undone.`,
  );
  parts.remove.disabled = confirming;
  parts.confirmYes.disabled = state.busy.has(`delete:${course.id}`);

  updateExport(parts.exportMenu, course);
  updateOutline(parts.outline, course, state, options);
}
