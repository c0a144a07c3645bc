// A lesson's versions (the README, "Authoring"): every text it has had, newest first, with when
// and how each came about (generated, edited by hand, restored) and the instructions it
// was written with. Any of them can be read, rendered, and made the lesson's text again.

import { h, setAttr, setText, syncKeyed } from "../dom.js";
import { renderInto } from "../markdown.js";
import { setHidden } from "./parts.js";

const HOW = { generated: "Generated", edited: "Edited by hand", restored: "Restored" };
const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const COUNT = new Intl.NumberFormat("en-US");
const BUSY = new Set(["pending", "generating"]);

/** The panel; `panel.open()` shows it and loads the list, `updateVersions` keeps it current. */
export function buildVersions(lesson, actions, { onClose }) {
  const id = `versions-${lesson.id}`;
  const parts = {
    heading: h("h2", { id: `${id}-heading`, tabindex: -1 }, "Versions"),
    // Loading, or why the list or a version could not be had.
    loading: h("p", { class: "versions-loading muted", role: "status" }),
    // What a restore did.
    status: h("p", { class: "versions-status", role: "status" }),
    list: h("ol", { class: "version-list" }),
    viewHeading: h("h3", { tabindex: -1 }),
    viewAbout: h("p", { class: "muted version-about" }),
    restore: h("button", { type: "button", class: "button primary" }, "Restore this version"),
    closeView: h("button", { type: "button", class: "button" }, "Close this version"),
    note: h("p", { class: "hint version-note", hidden: true }),
    error: h("p", { class: "form-error", role: "alert", hidden: true }),
    text: h("div", { class: "lesson-text version-text" }),
    versions: [],
    viewing: null, // the version on show: {version, source, created_at, ...}
    loadedKey: null, // the lesson's version and status when the list was fetched
    asked: 0, // bumped per list request, so that only the newest answer lands
    listed: null, // the promise of the newest list asked for
  };
  parts.view = h(
    "div",
    { class: "version-view", id: `${id}-view`, hidden: true },
    parts.viewHeading,
    parts.viewAbout,
    h("div", { class: "actions" }, parts.restore, parts.closeView),
    parts.note,
    parts.error,
    parts.text,
  );
  const panel = h(
    "section",
    { class: "versions panel", id, "aria-labelledby": parts.heading.id, hidden: true },
    h(
      "div",
      { class: "section-head" },
      parts.heading,
      h("button", { type: "button", class: "button small", onclick: onClose }, "Close"),
    ),
    parts.loading,
    parts.status,
    parts.list,
    parts.view,
  );
  panel.parts = parts;
  panel.lessonId = lesson.id;
  panel.actions = actions;
  panel.lesson = lesson;
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") onClose();
  });
  parts.closeView.addEventListener("click", () => {
    const from = parts.viewing?.version;
    closeView(panel);
    parts.list.querySelector(`[data-version="${from}"] .version-open`)?.focus();
  });
  parts.restore.addEventListener("click", () => restore(panel));
  panel.open = () => {
    panel.hidden = false;
    setText(parts.status, "");
    closeView(panel);
    load(panel);
    parts.heading.focus();
  };
  return panel;
}

export function updateVersions(panel, lesson, state) {
  panel.lesson = lesson;
  if (panel.hidden) return;
  const { parts } = panel;
  // A new text (written, edited, restored elsewhere) is a new version: list them again.
  const key = `${lesson.version}:${lesson.content_status}`;
  if (parts.loadedKey !== null && parts.loadedKey !== key && !BUSY.has(lesson.content_status)) {
    load(panel);
  }
  updateView(panel, lesson, state);
}

/** List the versions; settles once the newest list asked for (this or a later one) is shown. */
function load(panel) {
  const { parts, lesson } = panel;
  parts.loadedKey = `${lesson.version}:${lesson.content_status}`;
  parts.listed = fetchList(panel, ++parts.asked);
  return parts.listed;
}

async function fetchList(panel, asked) {
  const { parts } = panel;
  if (!parts.versions.length) setText(parts.loading, "Loading the versions…");
  const result = await panel.actions.listVersions(panel.lessonId);
  if (asked !== parts.asked) return parts.listed; // a newer list is on its way
  if (!result.ok) {
    if (result.message) setText(parts.loading, `Could not list the versions: ${result.message}`);
    return;
  }
  parts.versions = result.value.versions;
  setText(
    parts.loading,
    parts.versions.length
      ? ""
      : "No versions yet: the first one is made when the text is written.",
  );
  syncKeyed(
    parts.list,
    parts.versions,
    (version) => version.version,
    (version) => createRow(panel, version),
    (li, version) => updateRow(li, version, version === parts.versions[0]),
  );
  updateView(panel, panel.lesson, null);
}

function createRow(panel, version) {
  const open = h(
    "button",
    {
      type: "button",
      class: "link-button version-open",
      "aria-expanded": "false",
      "aria-controls": panel.parts.view.id,
    },
    `Version ${version.version}`,
  );
  open.addEventListener("click", () => view(panel, version.version));
  const li = h(
    "li",
    { class: "version-row", dataset: { version: version.version, source: version.source } },
    h(
      "p",
      { class: "version-line" },
      open,
      h("span", { class: "version-how" }),
      h("span", { class: "version-current" }),
      h("time", { class: "version-when" }),
      h("span", { class: "version-length" }),
    ),
    h("p", { class: "version-instructions", hidden: true }),
  );
  return li;
}

function updateRow(li, version, current) {
  const [line, instructions] = li.children;
  const [, how, mark, when, length] = line.children;
  setText(how, ` ${HOW[version.source] ?? version.source}`);
  setText(mark, current ? " (the current text)" : "");
  setAttr(li, "data-current", current ? "" : null);
  setAttr(when, "datetime", version.created_at);
  setText(when, ` · ${WHEN.format(new Date(version.created_at))}`);
  setText(length, ` · ${COUNT.format(version.length)} characters`);
  setText(instructions, version.instructions ? `Asked for: “${version.instructions}”` : "");
  setHidden(instructions, !version.instructions);
}

async function view(panel, number) {
  const { parts } = panel;
  if (parts.viewing?.version === number && !parts.view.hidden) {
    closeView(panel);
    return;
  }
  const result = await panel.actions.readVersion(panel.lessonId, number);
  if (!result.ok) {
    if (result.message) {
      setText(parts.loading, `Could not open version ${number}: ${result.message}`);
    }
    return;
  }
  const version = result.value;
  parts.viewing = version;
  setText(parts.viewHeading, `Version ${version.version}`);
  setText(
    parts.viewAbout,
    [
      HOW[version.source] ?? version.source,
      WHEN.format(new Date(version.created_at)),
      `${COUNT.format(version.length)} characters`,
      version.instructions ? `asked for “${version.instructions}”` : null,
    ]
      .filter(Boolean)
      .join(" · "),
  );
  // Rendered here as the lesson page renders text being written: the same markup.
  renderInto(parts.text, version.content);
  setHidden(parts.error, true);
  parts.view.hidden = false;
  for (const button of parts.list.querySelectorAll(".version-open")) {
    const open = button.closest(".version-row").dataset.version === String(number);
    setAttr(button, "aria-expanded", String(open));
    setAttr(button.closest(".version-row"), "aria-current", open ? "true" : null);
  }
  updateView(panel, panel.lesson, null);
  parts.viewHeading.focus();
}

function updateView(panel, lesson, state) {
  const { parts } = panel;
  if (parts.view.hidden || !parts.viewing) return;
  const current = parts.versions[0]?.version === parts.viewing.version;
  const busy = BUSY.has(lesson.content_status);
  const saving = state?.busy.has(`edit:${lesson.id}`) ?? false;
  parts.restore.disabled = current || busy || saving;
  const doing = lesson.content_status === "pending" ? "queued to be written" : "being written";
  const note = current
    ? "This is the lesson's text now."
    : busy
      ? `The lesson is ${doing}: a version can be restored once it is done.`
      : "";
  setText(parts.note, note);
  setHidden(parts.note, !note);
}

function closeView(panel) {
  const { parts } = panel;
  parts.view.hidden = true;
  parts.viewing = null;
  for (const button of parts.list.querySelectorAll(".version-open")) {
    setAttr(button, "aria-expanded", "false");
    setAttr(button.closest(".version-row"), "aria-current", null);
  }
}

async function restore(panel) {
  const { parts } = panel;
  const number = parts.viewing?.version;
  if (number === undefined) return;
  parts.restore.disabled = true;
  const result = await panel.actions.restoreVersion(panel.lessonId, number);
  if (!result.ok) {
    if (result.message) {
      setText(parts.error, `Could not restore it: ${result.message}`);
      setHidden(parts.error, false);
    }
    updateView(panel, panel.lesson, null);
    parts.viewHeading.focus(); // the button was disabled meanwhile, and lost the focus
    return;
  }
  closeView(panel);
  await load(panel);
  const newest = parts.versions[0]?.version;
  setText(
    parts.status,
    `Version ${number} is the lesson's text again${newest ? `, as version ${newest}` : ""}.`,
  );
  parts.heading.focus();
}
