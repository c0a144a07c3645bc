// The generate form. The browser's own validation bubbles are off (novalidate): the
// same words as the server's appear next to the form, for local and server errors alike.
//
// How the course is to be written (level, language, instructions, quizzes) is folded
// away under "More options", and remembered in this browser: the next course is asked
// for the same way unless the person changes it.

import { setAttr, setText } from "../dom.js";
import { describeOptions, setHidden } from "./parts.js";

const TOPIC_MIN = 3;
const TOPIC_MAX = 200;
const LESSONS_MIN = 1;
const LESSONS_MAX = 20;
const LANGUAGE_MIN = 2;
const LANGUAGE_MAX = 40;
const INSTRUCTIONS_MAX = 2000;
const LEVELS = ["beginner", "intermediate", "advanced"];
const DEFAULT_OPTIONS = Object.freeze({
  level: "beginner",
  language: "English",
  instructions: "",
  quizzes: true,
});
const REMEMBERED = "coursegen:course-options";

export function initForm(form, { generate, invalid }) {
  const { topic, lessons, mode, instructions } = form.elements;
  const count = form.querySelector("#topic-count");
  const showCount = () => setText(count, `${topic.value.trim().length}/${TOPIC_MAX}`);
  topic.addEventListener("input", showCount);
  const counted = form.querySelector("#instructions-count");
  const showCounted = () => setText(counted, `${instructions.value.length}/${INSTRUCTIONS_MAX}`);
  instructions.addEventListener("input", showCounted);
  const summary = form.querySelector("#options-summary");
  const showSummary = () => {
    // Folded away, the choices still show when they are not the usual ones.
    const chosen = readOptions(form);
    const differs = Object.keys(DEFAULT_OPTIONS).some((k) => chosen[k] !== DEFAULT_OPTIONS[k]);
    setText(summary, differs ? `: ${describeOptions(chosen, { instructions: true })}` : "");
  };
  form.addEventListener("input", showSummary);
  form.addEventListener("change", showSummary);
  const restore = () => {
    writeOptions(form, remembered());
    showCount();
    showCounted();
    showSummary();
  };
  restore();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = validate(topic.value, lessons.value, readOptions(form));
    if (request.error) {
      invalid(request);
      // An invalid option is shown, not left folded away.
      if (request.field === "language") form.querySelector(".more-options").open = true;
      form.elements[request.field].focus();
      return;
    }
    request.mode = mode.value;
    if (await generate(request)) {
      remember(request.options);
      form.reset();
      restore();
    }
  });
}

/** The state's `form` part: {busy, error, field, message}. */
export function renderForm(form, formState) {
  const button = form.querySelector("#generate-button");
  const error = form.querySelector("#form-error");
  const status = form.querySelector("#form-status");
  button.disabled = formState.busy;
  setAttr(form, "aria-busy", formState.busy ? "true" : null);
  setHidden(button.querySelector(".spinner"), !formState.busy);
  setText(
    button.querySelector(".button-label"),
    formState.busy ? "Writing the outline…" : "Generate course",
  );
  setText(error, formState.error ?? "");
  setHidden(error, !formState.error);
  setText(status, formState.message ?? "");
  // The server's errors name no field: they are the topic's, unless said otherwise.
  const field = formState.error ? (formState.field ?? "topic") : null;
  for (const name of ["topic", "lessons", "language"]) {
    setAttr(form.elements[name], "aria-invalid", field === name ? "true" : null);
  }
}

function readOptions(form) {
  const { level, language, instructions, quizzes } = form.elements;
  return {
    level: level.value,
    language: language.value.trim(),
    instructions: instructions.value.trim(),
    quizzes: quizzes.checked,
  };
}

function writeOptions(form, options) {
  const { level, language, instructions, quizzes } = form.elements;
  level.value = options.level;
  language.value = options.language;
  instructions.value = options.instructions;
  quizzes.checked = options.quizzes;
}

/** The options last used here, each checked: storage may hold anything. */
function remembered() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(REMEMBERED) ?? "null");
  } catch {
    // Storage is off (a privacy setting), or holds something else: the usual options.
  }
  const options = { ...DEFAULT_OPTIONS };
  if (saved === null || typeof saved !== "object") return options;
  if (LEVELS.includes(saved.level)) options.level = saved.level;
  if (typeof saved.language === "string" && saved.language.length <= LANGUAGE_MAX) {
    options.language = saved.language;
  }
  if (typeof saved.instructions === "string" && saved.instructions.length <= INSTRUCTIONS_MAX) {
    options.instructions = saved.instructions;
  }
  if (typeof saved.quizzes === "boolean") options.quizzes = saved.quizzes;
  return options;
}

function remember(options) {
  try {
    localStorage.setItem(REMEMBERED, JSON.stringify(options));
  } catch {
    // As above: remembering is a convenience.
  }
}

function validate(rawTopic, rawLessons, options) {
  const topic = rawTopic.trim();
  if (topic.length < TOPIC_MIN) {
    return { error: `The topic needs at least ${TOPIC_MIN} characters.`, field: "topic" };
  }
  if (topic.length > TOPIC_MAX) {
    return { error: `The topic can have at most ${TOPIC_MAX} characters.`, field: "topic" };
  }
  if (options.language.length < LANGUAGE_MIN || options.language.length > LANGUAGE_MAX) {
    return {
      error:
        `The language needs ${LANGUAGE_MIN} to ${LANGUAGE_MAX} characters, ` +
        "e.g. English or pt-BR.",
      field: "language",
    };
  }
  if (rawLessons.trim() === "") return { topic, lessons: null, options };
  const lessons = Number(rawLessons);
  if (!Number.isInteger(lessons) || lessons < LESSONS_MIN || lessons > LESSONS_MAX) {
    return {
      error: `The number of lessons must be a whole number from ${LESSONS_MIN} to ${LESSONS_MAX}.`,
      field: "lessons",
    };
  }
  return { topic, lessons, options };
}
