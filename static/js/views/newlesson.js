// Adding a lesson to a course's outline: its title, an optional description and its
// place ("At the start", "After 2. …", "At the end"). The course's job then writes it
// like the others.

import { h, setAttr, setText } from "../dom.js";
import { setHidden } from "./parts.js";

const TITLE_MAX = 300;
const DESCRIPTION_MAX = 2000;

export function buildAddForm(course, actions, say) {
  const ids = {
    form: `add-lesson-${course.id}`,
    title: `add-title-${course.id}`,
    description: `add-description-${course.id}`,
    place: `add-place-${course.id}`,
  };
  const open = h(
    "button",
    { type: "button", class: "button", "aria-expanded": "false", "aria-controls": ids.form },
    h("span", { "aria-hidden": "true" }, "+ "),
    "Add a lesson",
  );
  const title = h("input", {
    id: ids.title,
    name: "title",
    type: "text",
    required: true,
    maxlength: TITLE_MAX,
    autocomplete: "off",
    placeholder: "e.g. Knots for climbing",
  });
  const description = h("textarea", {
    id: ids.description,
    name: "description",
    rows: 2,
    maxlength: DESCRIPTION_MAX,
    placeholder: "What it teaches, in a sentence",
  });
  const place = h("select", { id: ids.place, name: "place" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Add lesson");
  const form = h(
    "form",
    { class: "add-lesson", id: ids.form, hidden: true, novalidate: true },
    h("h3", null, "New lesson"),
    h("div", { class: "field" }, h("label", { for: ids.title }, "Title"), title),
    h(
      "div",
      { class: "field" },
      h(
        "label",
        { for: ids.description },
        "Description ",
        h("span", { class: "optional" }, "(optional)"),
      ),
      description,
    ),
    h("div", { class: "field" }, h("label", { for: ids.place }, "Place"), place),
    error,
    h(
      "div",
      { class: "actions" },
      submit,
      h(
        "button",
        { type: "button", class: "button", onclick: () => closeAdd(wrapper, true) },
        "Cancel",
      ),
    ),
  );
  const wrapper = h("div", { class: "outline-add", hidden: true }, open, form);
  wrapper.parts = { open, form, title, description, place, error, submit };
  open.addEventListener("click", () => {
    if (!form.hidden) {
      closeAdd(wrapper, true);
      return;
    }
    form.hidden = false;
    setAttr(open, "aria-expanded", "true");
    setHidden(error, true);
    title.focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeAdd(wrapper, true);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = title.value.trim();
    if (!name) {
      showError(error, "A lesson needs a title.", title);
      setAttr(title, "aria-invalid", "true");
      return;
    }
    setAttr(title, "aria-invalid", null);
    const position = Number(place.value);
    const result = await actions.addLesson(course.id, {
      title: name,
      description: description.value.trim(),
      position,
    });
    if (result.ok) {
      form.reset();
      place.dataset.key = ""; // back to "At the end" on the next update
      closeAdd(wrapper, true);
      const { title: added, position: at } = result.value;
      say(`Added “${added}” as lesson ${at}: it is being written.`);
    } else if (result.message) {
      showError(error, `Could not add the lesson: ${result.message}`, title);
    }
  });
  return wrapper;
}

export function updateAddForm(wrapper, lessons, busy) {
  const { place, submit } = wrapper.parts;
  submit.disabled = busy;
  // "At the start", "After 1. …", …, "At the end": rebuilt when the lessons change.
  const key = JSON.stringify(lessons.map((lesson) => [lesson.id, lesson.title]));
  if (place.dataset.key === key) return;
  const atEnd = !place.dataset.key || Number(place.value) > lessons.length;
  const chosen = place.value;
  place.dataset.key = key;
  const last = lessons.length + 1;
  place.replaceChildren(
    ...lessons.map((lesson, index) =>
      h(
        "option",
        { value: index + 1 },
        index === 0 ? "At the start" : `After ${index}. ${lessons[index - 1].title}`,
      ),
    ),
    h(
      "option",
      { value: last },
      lessons.length ? `At the end, after ${lessons.length}. ${lessons.at(-1).title}` : "First",
    ),
  );
  place.value = atEnd ? String(last) : chosen;
}

export function closeAdd(wrapper, focus) {
  const { open, form } = wrapper.parts;
  if (form.hidden) return;
  form.hidden = true;
  setAttr(open, "aria-expanded", "false");
  if (focus) open.focus();
}

function showError(el, text, field) {
  setText(el, text);
  setHidden(el, false);
  field?.focus();
}
