// Editing a lesson by hand (the README, "Authoring"): its title, its description and its text, as
// Markdown beside a live preview rendered exactly like the model's text (markdown.js);
// on a phone the two are tabs. The text cannot change while the lesson is queued or
// being written, and the editor says so (the server refuses it then, with its reasons).

import { h, setAttr, setText } from "../dom.js";
import { renderInto } from "../markdown.js";
import { setHidden } from "./parts.js";

const TITLE_MAX = 300;
const DESCRIPTION_MAX = 2000;
const BUSY = new Set(["pending", "generating"]);
// The stylesheet's one-column layout: there, the text and its preview are tabs.
const narrow = window.matchMedia("(max-width: 48rem)");

export function buildEditor(lesson, actions, { onClose, onSaved }) {
  const id = `editor-${lesson.id}`;
  const field = (name) => `${id}-${name}`;
  const parts = {
    heading: h("h2", { id: field("heading"), tabindex: -1 }, "Edit this lesson"),
    title: h("input", {
      id: field("title"),
      name: "title",
      type: "text",
      required: true,
      maxlength: TITLE_MAX,
      autocomplete: "off",
    }),
    description: h("textarea", {
      id: field("description"),
      name: "description",
      rows: 2,
      maxlength: DESCRIPTION_MAX,
    }),
    content: h("textarea", {
      id: field("content"),
      name: "content",
      class: "editor-content",
      rows: 18,
      spellcheck: "true",
      "aria-describedby": field("locked"),
    }),
    preview: h("div", { class: "lesson-text editor-preview" }),
    locked: h("p", { id: field("locked"), class: "editor-locked", hidden: true }),
    error: h("p", { class: "form-error", role: "alert", hidden: true }),
    save: h("button", { type: "submit", class: "button primary" }, "Save changes"),
    cancel: h("button", { type: "button", class: "button" }, "Cancel"),
    writeTab: h("button", { type: "button", role: "tab", id: field("write-tab") }, "Write"),
    previewTab: h("button", { type: "button", role: "tab", id: field("preview-tab") }, "Preview"),
    original: null, // {title, description, content} as loaded: only changes are sent
    wasLocked: null,
    frame: 0,
  };
  parts.writePane = h(
    "div",
    { class: "editor-pane editor-write", id: field("write") },
    h("label", { for: parts.content.id }, "Text ", h("span", { class: "optional" }, "(Markdown)")),
    parts.content,
  );
  parts.previewPane = h(
    "div",
    { class: "editor-pane editor-preview-pane", id: field("preview") },
    h("p", { class: "pane-label", "aria-hidden": "true" }, "Preview"),
    parts.preview,
  );
  parts.tabs = h(
    "div",
    { class: "editor-tabs", role: "tablist", "aria-label": "Text and preview" },
    parts.writeTab,
    parts.previewTab,
  );
  const form = h(
    "form",
    {
      class: "editor panel",
      id,
      "aria-labelledby": parts.heading.id,
      novalidate: true,
      hidden: true,
    },
    parts.heading,
    h("div", { class: "field" }, h("label", { for: parts.title.id }, "Title"), parts.title),
    h(
      "div",
      { class: "field" },
      h("label", { for: parts.description.id }, "Description"),
      parts.description,
    ),
    parts.locked,
    parts.tabs,
    h("div", { class: "editor-panes" }, parts.writePane, parts.previewPane),
    parts.error,
    h("div", { class: "actions" }, parts.save, parts.cancel),
  );
  form.parts = parts;
  form.lesson = lesson;
  form.actions = actions;

  // The preview follows the text, once a frame at most.
  parts.content.addEventListener("input", () => {
    if (parts.frame) return;
    parts.frame = requestAnimationFrame(() => {
      parts.frame = 0;
      renderInto(parts.preview, parts.content.value);
    });
  });
  parts.cancel.addEventListener("click", onClose);
  // Escape leaves an editor with nothing typed into it; changes need Cancel, so that a
  // stray key (closing the browser's suggestions, say) loses nothing.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !changed(form)) onClose();
  });
  for (const tab of [parts.writeTab, parts.previewTab]) {
    tab.addEventListener("click", () => selectTab(form, tab));
    tab.addEventListener("keydown", (event) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      event.preventDefault();
      const other = tab === parts.writeTab ? parts.previewTab : parts.writeTab;
      const target =
        event.key === "Home" ? parts.writeTab : event.key === "End" ? parts.previewTab : other;
      selectTab(form, target);
      target.focus();
    });
  }
  const layout = () => {
    if (!form.isConnected && form.dataset.layout) {
      narrow.removeEventListener("change", layout); // the page has gone
      return;
    }
    setLayout(form, narrow.matches ? "tabs" : "split");
  };
  narrow.addEventListener("change", layout);
  layout();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await save(form, onSaved);
  });
  return form;
}

/** Show the editor with the lesson as it stands now (its Markdown is fetched). */
export async function openEditor(form) {
  const { parts } = form;
  form.hidden = false;
  setHidden(parts.error, true);
  parts.original = null;
  for (const input of [parts.title, parts.description, parts.content]) input.disabled = true;
  parts.content.value = "";
  parts.content.placeholder = "Loading…";
  parts.preview.replaceChildren();
  parts.heading.focus();
  const result = await form.actions.readLesson(form.lesson.id);
  if (form.hidden) return; // closed meanwhile
  if (!result.ok) {
    if (result.message) showError(form, `Could not load the lesson: ${result.message}`);
    return;
  }
  fill(form, result.value);
  parts.title.focus();
}

export function updateEditor(form, lesson, state) {
  form.lesson = lesson;
  if (form.hidden) return;
  const { parts } = form;
  const locked = BUSY.has(lesson.content_status);
  const words =
    lesson.content_status === "pending"
      ? "The text cannot be edited while the lesson is queued to be written: it is " +
        "replaced when it is written. The title and description can be."
      : "The text cannot be edited while the lesson is being written. The title and " +
        "description can be; the text once it is written.";
  setText(parts.locked, locked ? words : "");
  setHidden(parts.locked, !locked);
  if (parts.original !== null) {
    parts.content.readOnly = locked;
    setAttr(parts.content, "aria-readonly", locked ? "true" : null);
  }
  // Written meanwhile: the text to edit is the new one (nothing could be typed meanwhile).
  if (parts.wasLocked && !locked && parts.original !== null) reloadText(form);
  parts.wasLocked = locked;
  parts.save.disabled = parts.original === null || state.busy.has(`edit:${lesson.id}`);
}

/** Whether anything was typed that is not saved. */
function changed(form) {
  const { parts } = form;
  if (parts.original === null) return false;
  return (
    parts.title.value.trim() !== parts.original.title ||
    parts.description.value.trim() !== parts.original.description ||
    parts.content.value !== parts.original.content
  );
}

function fill(form, lesson) {
  const { parts } = form;
  parts.original = {
    title: lesson.title,
    description: lesson.description ?? "",
    content: lesson.content ?? "",
  };
  parts.title.value = parts.original.title;
  parts.description.value = parts.original.description;
  parts.content.value = parts.original.content;
  parts.content.placeholder = "Markdown: # headings, **bold**, - lists, ``` code";
  for (const input of [parts.title, parts.description, parts.content]) input.disabled = false;
  renderInto(parts.preview, parts.content.value);
  parts.wasLocked = BUSY.has(lesson.content_status);
  parts.content.readOnly = parts.wasLocked;
  parts.save.disabled = false;
}

async function reloadText(form) {
  const { parts } = form;
  const result = await form.actions.readLesson(form.lesson.id);
  if (!result.ok || form.hidden || parts.original === null) return;
  if (parts.content.value !== parts.original.content) return; // typed into since: kept
  parts.original.content = result.value.content ?? "";
  parts.content.value = parts.original.content;
  renderInto(parts.preview, parts.content.value);
}

async function save(form, onSaved) {
  const { parts, lesson } = form;
  if (parts.original === null) return;
  const title = parts.title.value.trim();
  const description = parts.description.value.trim();
  const content = parts.content.value;
  if (!title) {
    showError(form, "A lesson needs a title.", parts.title);
    return;
  }
  const changes = {};
  if (title !== parts.original.title) changes.title = title;
  if (description !== parts.original.description) changes.description = description;
  if (content !== parts.original.content) {
    if (!content.trim()) {
      showError(form, "The text cannot be empty.", parts.content);
      return;
    }
    changes.content = content;
  }
  if (!Object.keys(changes).length) {
    onSaved(null);
    return;
  }
  setAttr(parts.title, "aria-invalid", null);
  parts.save.disabled = true;
  const result = await form.actions.editLesson(lesson.id, changes);
  parts.save.disabled = false;
  if (result.ok) {
    onSaved(result.value);
    return;
  }
  if (result.message) {
    // A 409: the lesson started being written meanwhile; the server says so.
    const target = result.status === 409 ? parts.content : parts.title;
    showError(form, `Could not save: ${result.message}`, target);
  }
}

function showError(form, text, field = null) {
  const { parts } = form;
  setText(parts.error, text);
  setHidden(parts.error, false);
  if (field) {
    if (field === parts.content) selectTab(form, parts.writeTab);
    field.focus();
  }
}

function setLayout(form, layout) {
  const { parts } = form;
  form.dataset.layout = layout;
  const tabs = layout === "tabs";
  setHidden(parts.tabs, !tabs);
  // Tab semantics only where they are tabs; side by side, two plain regions.
  for (const [tab, pane] of [
    [parts.writeTab, parts.writePane],
    [parts.previewTab, parts.previewPane],
  ]) {
    setAttr(pane, "role", tabs ? "tabpanel" : null);
    setAttr(pane, "aria-labelledby", tabs ? tab.id : null);
    setAttr(tab, "aria-controls", pane.id);
  }
  setAttr(parts.previewPane, "aria-label", tabs ? null : "Preview");
  setAttr(parts.previewPane, "role", tabs ? "tabpanel" : "region");
  selectTab(form, form.dataset.tab === "preview" ? parts.previewTab : parts.writeTab);
}

function selectTab(form, tab) {
  const { parts } = form;
  const preview = tab === parts.previewTab;
  form.dataset.tab = preview ? "preview" : "write";
  const tabs = form.dataset.layout === "tabs";
  setAttr(parts.writeTab, "aria-selected", String(!preview));
  setAttr(parts.previewTab, "aria-selected", String(preview));
  setAttr(parts.writeTab, "tabindex", preview ? "-1" : "0");
  setAttr(parts.previewTab, "tabindex", preview ? "0" : "-1");
  setHidden(parts.writePane, tabs && preview);
  setHidden(parts.previewPane, tabs && !preview);
}
