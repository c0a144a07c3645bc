// The course page's list of lessons, and its outline editing (the README, "Authoring"): add a
// lesson at a place, rename one, move it up or down, remove it. Reading comes first:
// the controls show once "Edit outline" is pressed. Every change is saved at once, and
// other pages follow it through the lesson events.

import { h, setAttr, setText, syncKeyed } from "../dom.js";
import { lessonHref } from "../router.js";
import { changed } from "../store.js";
import { breakdown, money, spent } from "./cost.js";
import { buildAddForm, closeAdd, updateAddForm } from "./newlesson.js";
import { LESSON_STATUS, marker, setHidden, updateMarker } from "./parts.js";

const TITLE_MAX = 300;
const DESCRIPTION_MAX = 2000;

/** Build the list and its editing controls; `updateOutline` keeps them in step. */
export function buildOutline(course, actions) {
  const outline = h("div", { class: "outline" });
  const ui = {
    courseId: course.id,
    actions,
    editing: false,
    toggle: h(
      "button",
      { type: "button", class: "button small", "aria-pressed": "false" },
      "Edit outline",
    ),
    hint: h(
      "p",
      { class: "outline-hint hint", hidden: true },
      "Move, rename or remove lessons, or add one. Each change is saved at once; a new ",
      "lesson is written like the others.",
    ),
    list: h("ol", { class: "lesson-list" }),
    // Said once an edit is done: rows move and go, and a screen reader hears why.
    status: h("p", { class: "outline-status", role: "status" }),
    add: buildAddForm(course, actions, (text) => say(ui, text)),
    rows: new Map(), // lesson id -> its row, with its own parts
  };
  ui.toggle.addEventListener("click", () => {
    ui.editing = !ui.editing;
    for (const row of ui.list.children) closeRowForms(row);
    if (!ui.editing) closeAdd(ui.add);
    changed();
  });
  outline.ui = ui;
  outline.append(
    h("div", { class: "section-head" }, h("h2", null, "Lessons"), ui.toggle),
    ui.hint,
    ui.list,
    ui.add,
    ui.status,
  );
  return outline;
}

export function updateOutline(outline, course, state, options) {
  const { ui } = outline;
  outline.course = course;
  setAttr(ui.toggle, "aria-pressed", String(ui.editing));
  setHidden(ui.hint, !ui.editing);
  setHidden(ui.add, !ui.editing);
  setAttr(outline, "data-editing", ui.editing ? "" : null);
  const lessons = course.lessons ?? [];
  const busy = state.busy.has(`outline:${course.id}`);
  // Reordering moves rows, which takes the focus from a button in them: it is put back.
  const focused = ui.list.contains(document.activeElement) ? document.activeElement : null;
  syncKeyed(
    ui.list,
    lessons,
    (lesson) => lesson.id,
    (lesson) => createRow(outline, lesson),
    (li, lesson) => updateRow(li, lesson, course, state, options, { editing: ui.editing, busy }),
  );
  if (focused?.isConnected && focused.disabled) {
    // At the top (or bottom) now, its Up (or Down) is disabled: the other one takes over.
    focused.closest(".row-tools")?.querySelector(".move:enabled")?.focus({ preventScroll: true });
  } else if (focused?.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  }
  updateAddForm(ui.add, lessons, state.busy.has(`outline:${course.id}`));
}

function say(ui, text) {
  // Emptied first, so that the same words twice are still announced twice.
  setText(ui.status, "");
  requestAnimationFrame(() => setText(ui.status, text));
}

// -- rows -----------------------------------------------------------------------------

function createRow(outline, lesson) {
  const { ui } = outline;
  const id = lesson.id;
  const named = (label, suffix = "") =>
    h("span", null, label, h("span", { class: "visually-hidden lesson-name" }), suffix);
  const parts = {
    mark: marker(),
    link: h("a", { class: "lesson-link" }),
    word: h("span", { class: "status-word" }),
    cost: h("span", { class: "lesson-cost" }),
    description: h("p", { class: "lesson-description" }),
    up: h("button", { type: "button", class: "button small move", dataset: { step: -1 } }),
    down: h("button", { type: "button", class: "button small move", dataset: { step: 1 } }),
    rename: h("button", { type: "button", class: "button small", "aria-expanded": "false" }),
    remove: h("button", { type: "button", class: "button small danger", "aria-expanded": "false" }),
    renameForm: null,
    confirm: null,
  };
  parts.up.append(h("span", { "aria-hidden": "true" }, "↑ "), named("Up"));
  parts.down.append(h("span", { "aria-hidden": "true" }, "↓ "), named("Down"));
  parts.rename.append(named("Rename"));
  parts.remove.append(named("Remove", "…"));
  for (const button of [parts.up, parts.down]) {
    button.addEventListener("click", () => {
      const lessonNow = findIn(outline, id);
      if (!lessonNow) return;
      const position = lessonNow.position + Number(button.dataset.step);
      ui.actions.moveLesson(ui.courseId, id, position);
    });
  }

  // Rename: its title and description, in place.
  const titleId = `rename-title-${id}`;
  const descriptionId = `rename-description-${id}`;
  const renameError = h("p", { class: "form-error", role: "alert", hidden: true });
  const titleInput = h("input", {
    id: titleId,
    name: "title",
    type: "text",
    required: true,
    maxlength: TITLE_MAX,
    autocomplete: "off",
  });
  const descriptionInput = h("textarea", {
    id: descriptionId,
    name: "description",
    rows: 2,
    maxlength: DESCRIPTION_MAX,
  });
  const save = h("button", { type: "submit", class: "button primary small" }, "Save");
  parts.renameForm = h(
    "form",
    { class: "row-form", hidden: true, novalidate: true, id: `rename-${id}` },
    h("div", { class: "field" }, h("label", { for: titleId }, "Title"), titleInput),
    h(
      "div",
      { class: "field" },
      h("label", { for: descriptionId }, "Description"),
      descriptionInput,
    ),
    renameError,
    h(
      "div",
      { class: "actions" },
      save,
      h(
        "button",
        { type: "button", class: "button small", onclick: () => closeRename(li, true) },
        "Cancel",
      ),
    ),
  );
  setAttr(parts.rename, "aria-controls", parts.renameForm.id);
  parts.rename.addEventListener("click", () => {
    if (!parts.renameForm.hidden) {
      closeRename(li, true);
      return;
    }
    closeRowForms(li);
    const lessonNow = findIn(outline, id);
    titleInput.value = lessonNow?.title ?? "";
    descriptionInput.value = lessonNow?.description ?? "";
    setHidden(renameError, true);
    setAttr(titleInput, "aria-invalid", null);
    parts.renameForm.hidden = false;
    setAttr(parts.rename, "aria-expanded", "true");
    titleInput.focus();
    titleInput.select();
  });
  parts.renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const lessonNow = findIn(outline, id);
    const title = titleInput.value.trim();
    const description = descriptionInput.value.trim();
    if (!title) {
      showError(renameError, "A lesson needs a title.", titleInput);
      return;
    }
    const changes = {};
    if (title !== lessonNow?.title) changes.title = title;
    if (description !== (lessonNow?.description ?? "")) changes.description = description;
    if (!Object.keys(changes).length) {
      closeRename(li, true);
      return;
    }
    save.disabled = true;
    const result = await ui.actions.editLesson(id, changes);
    save.disabled = false;
    if (result.ok) {
      closeRename(li, true);
      say(ui, `Renamed to “${result.value.title}”.`);
    } else if (result.message) {
      showError(renameError, `Could not save: ${result.message}`, titleInput);
    }
  });

  // Remove: asked once more, in place.
  const confirmText = h("p");
  const removeError = h("p", { class: "form-error", role: "alert", hidden: true });
  const yes = h("button", { type: "button", class: "button danger small" }, "Remove lesson");
  parts.confirm = h(
    "div",
    {
      class: "confirm row-confirm",
      role: "group",
      "aria-label": "Confirm removal",
      hidden: true,
      id: `remove-${id}`,
    },
    confirmText,
    removeError,
    h(
      "div",
      { class: "actions" },
      yes,
      h(
        "button",
        { type: "button", class: "button small", onclick: () => closeRemove(li, true) },
        "Keep it",
      ),
    ),
  );
  parts.confirmText = confirmText;
  setAttr(parts.remove, "aria-controls", parts.confirm.id);
  parts.remove.addEventListener("click", () => {
    closeRowForms(li);
    setHidden(removeError, true);
    parts.confirm.hidden = false;
    setAttr(parts.remove, "aria-expanded", "true");
    yes.focus();
  });
  yes.addEventListener("click", async () => {
    const lessonNow = findIn(outline, id);
    const title = lessonNow?.title ?? "the lesson";
    // Where the focus goes once the row is gone: the next row, else the one before.
    const neighbour = li.nextElementSibling ?? li.previousElementSibling;
    yes.disabled = true;
    const result = await ui.actions.removeLesson(ui.courseId, id);
    yes.disabled = false;
    if (result.ok) {
      say(ui, `Removed “${title}”.`);
      const next = neighbour?.isConnected ? neighbour.parts.remove : ui.toggle;
      next.focus({ preventScroll: true });
    } else if (result.message) {
      showError(removeError, `Could not remove it: ${result.message}`, yes);
    }
  });

  const tools = h(
    "div",
    { class: "row-tools", hidden: true },
    parts.up,
    parts.down,
    parts.rename,
    parts.remove,
  );
  parts.tools = tools;
  const li = h(
    "li",
    { class: "lesson-row" },
    parts.mark,
    h(
      "div",
      { class: "lesson-main" },
      parts.link,
      parts.word,
      parts.cost,
      parts.description,
      tools,
      parts.renameForm,
      parts.confirm,
    ),
  );
  li.parts = parts;
  li.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (!parts.renameForm.hidden) closeRename(li, true);
    else if (!parts.confirm.hidden) closeRemove(li, true);
  });
  return li;
}

function updateRow(li, lesson, course, state, options, { editing, busy }) {
  const { parts } = li;
  const status = lesson.content_status;
  const count = course.lessons.length;
  setAttr(li, "data-lesson-id", lesson.id);
  setAttr(li, "data-status", status);
  updateMarker(parts.mark, status);
  setAttr(parts.link, "href", lessonHref(course.id, lesson.id));
  setText(parts.link, lesson.title);
  // A lesson in a Message Batch is not being written before your eyes: it waits.
  const inBatch = status === "generating" && course.mode === "batch";
  setText(parts.word, inBatch ? "In the batch…" : (LESSON_STATUS[status]?.label ?? status));
  const finished = (status === "complete" || status === "error") && spent(lesson.usage);
  // Non-breaking: "Ready · $0.0123" stays on one line.
  setText(parts.cost, finished ? `\u00a0·\u00a0${money(lesson.usage.cost_usd, options)}` : "");
  setAttr(parts.cost, "title", finished ? breakdown(lesson.usage, options) : null);
  setText(parts.description, status === "error" ? lesson.content_error : lesson.description);
  setAttr(parts.description, "data-error", status === "error" ? "" : null);

  // The controls, named for their lesson: "Rename “Knots at sea”".
  for (const name of li.querySelectorAll(".lesson-name")) setText(name, ` “${lesson.title}”`);
  setText(
    parts.confirmText,
    `Remove “${lesson.title}”? Its text, its quiz and all its versions go with it.`,
  );
  setHidden(parts.tools, !editing);
  if (!editing) closeRowForms(li);
  // Not disabled while a change is on its way, which would take the focus from them: a
  // click meanwhile is let go (one change at a time per course).
  parts.up.disabled = lesson.position <= 1;
  parts.down.disabled = lesson.position >= count;
  setAttr(parts.tools, "aria-busy", busy ? "true" : null);
}

function findIn(outline, lessonId) {
  return outline.course?.lessons?.find((lesson) => lesson.id === lessonId) ?? null;
}

function closeRowForms(li) {
  closeRename(li, false);
  closeRemove(li, false);
}

function closeRename(li, focus) {
  const { parts } = li;
  if (parts.renameForm.hidden) return;
  parts.renameForm.hidden = true;
  setAttr(parts.rename, "aria-expanded", "false");
  if (focus) parts.rename.focus();
}

function closeRemove(li, focus) {
  const { parts } = li;
  if (parts.confirm.hidden) return;
  parts.confirm.hidden = true;
  setAttr(parts.remove, "aria-expanded", "false");
  if (focus) parts.remove.focus();
}

function showError(el, text, field) {
  setText(el, text);
  setHidden(el, false);
  field?.focus();
}
