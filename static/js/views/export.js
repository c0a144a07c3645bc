// The course's Export menu: the files the README's "Export" section describes, as plain downloads.

import { h, setText } from "../dom.js";
import { setHidden } from "./parts.js";

const FORMATS = [
  ["markdown", "Markdown (.zip)", "A README and one file per lesson, for git or any editor."],
  ["html", "Web page (.html)", "One file that reads offline; print it to make a PDF."],
  ["scorm12", "SCORM 1.2 (.zip)", "For Moodle, Canvas, Blackboard, D2L or a SCORM player."],
  [
    "cc",
    "Common Cartridge (.imscc)",
    "Imports into Canvas, Moodle, Blackboard or D2L as pages and native quizzes.",
  ],
];

export function buildExport(course) {
  const links = FORMATS.map(([format, label, hint]) =>
    h(
      "li",
      null,
      // Relative, like the API calls: the session cookie goes with it, and a path prefix works.
      h("a", { href: `api/courses/${course.id}/export/${format}`, download: "" }, label),
      h("span", { class: "export-hint" }, hint),
    ),
  );
  const parts = {
    list: h("ul", { class: "export-formats" }, links),
    waiting: h("p", { class: "export-waiting" }),
    unwritten: h("p", { class: "export-unwritten" }),
  };
  const menu = h(
    "details",
    { class: "export-menu" },
    h("summary", { class: "button" }, "Export"),
    h("div", { class: "export-panel" }, parts.waiting, parts.list, parts.unwritten),
  );
  menu.parts = parts;
  return menu;
}

export function updateExport(menu, course) {
  const { list, waiting, unwritten } = menu.parts;
  // The server answers 409 while the job runs: a package of half a course would look whole.
  const running = course.job?.status === "running";
  setHidden(list, running);
  setHidden(waiting, !running);
  setText(
    waiting,
    "The course can be exported once it has been written (or its generation is cancelled).",
  );
  const missing =
    course.lessons?.filter((lesson) => lesson.content_status !== "complete").length ?? 0;
  setHidden(unwritten, running || missing === 0);
  setText(
    unwritten,
    missing === 1
      ? "1 lesson is not written: the files list it as not written yet."
      : `${missing} lessons are not written: the files list them as not written yet.`,
  );
}
