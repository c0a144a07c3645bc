// The generate form. The browser's own validation bubbles are off (novalidate): the
// same words as the server's appear next to the form, for local and server errors alike.

import { setAttr, setText } from "../dom.js";
import { setHidden } from "./parts.js";

const TOPIC_MIN = 3;
const TOPIC_MAX = 200;
const LESSONS_MIN = 1;
const LESSONS_MAX = 20;

export function initForm(form, { generate, invalid }) {
  const { topic, lessons, mode } = form.elements;
  const count = form.querySelector("#topic-count");
  const showCount = () => setText(count, `${topic.value.trim().length}/${TOPIC_MAX}`);
  topic.addEventListener("input", showCount);
  showCount();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = validate(topic.value, lessons.value);
    if (request.error) {
      invalid(request);
      (request.field === "lessons" ? lessons : topic).focus();
      return;
    }
    if (await generate(request.topic, request.lessons, mode.value)) {
      form.reset();
      showCount();
    }
  });
}

/** The state's `form` part: {busy, error, field, message}. */
export function renderForm(form, formState) {
  const { topic, lessons } = form.elements;
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
  setAttr(topic, "aria-invalid", formState.error && formState.field !== "lessons" ? "true" : null);
  setAttr(
    lessons,
    "aria-invalid",
    formState.error && formState.field === "lessons" ? "true" : null,
  );
}

function validate(rawTopic, rawLessons) {
  const topic = rawTopic.trim();
  if (topic.length < TOPIC_MIN) {
    return { error: `The topic needs at least ${TOPIC_MIN} characters.`, field: "topic" };
  }
  if (topic.length > TOPIC_MAX) {
    return { error: `The topic can have at most ${TOPIC_MAX} characters.`, field: "topic" };
  }
  if (rawLessons.trim() === "") return { topic, lessons: null };
  const lessons = Number(rawLessons);
  if (!Number.isInteger(lessons) || lessons < LESSONS_MIN || lessons > LESSONS_MAX) {
    return {
      error: `The number of lessons must be a whole number from ${LESSONS_MIN} to ${LESSONS_MAX}.`,
      field: "lessons",
    };
  }
  return { topic, lessons };
}
