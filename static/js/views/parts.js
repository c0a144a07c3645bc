// Pieces shared by the tree, the course page and the lesson page.

import { h, setAttr, setText } from "../dom.js";

/** Words for each lesson status: `label` to show, `word` to read after a title. */
export const LESSON_STATUS = {
  pending: { label: "Queued", word: "queued" },
  generating: { label: "Writing…", word: "being written" },
  complete: { label: "Ready", word: "ready" },
  error: { label: "Failed", word: "failed" },
};

/** A status marker: a dot, a spinner, a tick or a cross, drawn by the stylesheet. */
export function marker() {
  return h("span", { class: "status-marker", "aria-hidden": "true" });
}

export function updateMarker(el, status) {
  setAttr(el, "data-status", status);
}

/** "5 of 8 lessons done (4 ready, 1 failed)": completed + failed against the total. */
export function progressText(job) {
  const done = job.completed_lessons + job.failed_lessons;
  const lessons = job.total_lessons === 1 ? "lesson" : "lessons";
  const failed = job.failed_lessons ? `, ${job.failed_lessons} failed` : "";
  return `${done} of ${job.total_lessons} ${lessons} done (${job.completed_lessons} ready${failed})`;
}

/** One sentence on where the job stands. */
export function jobStatusText(job) {
  switch (job.status) {
    case "running":
      return "Writing lessons…";
    case "complete":
      return "Every lesson is ready.";
    case "cancelled":
      return "Cancelled. Lessons not yet written stay queued until you resume.";
    default:
      return job.error_message
        ? `Finished with errors: ${job.error_message}.`
        : "Finished with errors.";
  }
}

/** A <progress> with its value kept in step with the job. */
export function updateProgress(bar, job) {
  if (bar.value !== job.progress) bar.value = job.progress;
  setAttr(bar, "aria-valuetext", progressText(job));
}

export const LEVEL_LABEL = {
  beginner: "Beginner",
  intermediate: "Intermediate",
  advanced: "Advanced",
};

/**
 * How a course is to be written, in words: "Beginner · Deutsch · with quizzes"; with
 * `instructions`, " · with instructions" when there are some.
 */
export function describeOptions(options, { instructions = false } = {}) {
  const parts = [
    LEVEL_LABEL[options.level] ?? options.level,
    options.language,
    options.quizzes ? "with quizzes" : "no quizzes",
  ];
  if (instructions && options.instructions) parts.push("with instructions");
  return parts.join(" · ");
}

export function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

export { setText };
