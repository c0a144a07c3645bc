// "Regenerate this lesson": a small form for what this version should do differently
// ("more examples", "shorter", "for 12-year-olds"), optional, then Regenerate or Cancel.
// The instructions go with this one regeneration, in addition to the course's own.

import { h, setText } from "../dom.js";
import { setHidden } from "./parts.js";

const INSTRUCTIONS_MAX = 2000;

/** "Regenerate this lesson": optional instructions for this version, then Regenerate. */
export function buildRegenerate(course, lesson, actions, { onClose, onSent }) {
  const id = `regenerate-${lesson.id}`;
  const count = h("span", { class: "count" }, `0/${INSTRUCTIONS_MAX}`);
  const instructions = h("textarea", {
    id: `${id}-instructions`,
    name: "instructions",
    rows: 3,
    maxlength: INSTRUCTIONS_MAX,
    placeholder: "e.g. more examples · shorter · for 12-year-olds",
    "aria-describedby": `${id}-hint`,
  });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Regenerate");
  const form = h(
    "form",
    { class: "regenerate-form panel", id, novalidate: true, hidden: true },
    h(
      "div",
      { class: "field" },
      h(
        "label",
        { for: instructions.id },
        "Instructions for this version ",
        h("span", { class: "optional" }, "(optional)"),
      ),
      instructions,
      h(
        "p",
        { class: "hint", id: `${id}-hint` },
        h("span", null, "For this regeneration only, with the course's own instructions. ",
          "The text it replaces stays in Versions."),
        count,
      ),
    ),
    error,
    h(
      "div",
      { class: "actions" },
      submit,
      h("button", { type: "button", class: "button", onclick: onClose }, "Cancel"),
    ),
  );
  instructions.addEventListener("input", () =>
    setText(count, `${instructions.value.length}/${INSTRUCTIONS_MAX}`),
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") onClose();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await actions.regenerate(course.id, lesson.id, instructions.value.trim());
    if (result.ok) {
      form.reset();
      setText(count, `0/${INSTRUCTIONS_MAX}`);
      onSent();
    } else if (result.message) {
      setText(error, `Could not write it again: ${result.message}`);
      setHidden(error, false);
      instructions.focus();
    }
  });
  form.open = () => {
    form.hidden = false;
    setHidden(error, true);
    instructions.focus();
  };
  form.update = (current, state) => {
    submit.disabled = state.busy.has(`lesson:${current.id}`);
  };
  return form;
}
