// A lesson's quiz, under its text (the README, "Authoring"): one fieldset of radio buttons per
// question; "Check" marks each answer right or wrong with its explanation and gives the
// score, "Try again" starts over. All of it works with the keyboard alone (Tab between
// questions, arrows within one), and the score is announced.

import { h, setAttr, setText, spinner } from "../dom.js";
import { quizOf } from "../store.js";
import { setHidden } from "./parts.js";

export function buildQuiz(course, lesson, actions) {
  const id = `quiz-${lesson.id}`;
  const parts = {
    heading: h("h2", { id: `${id}-heading` }, "Quiz"),
    // Not a live region: the lesson's own status line says what is going on.
    waiting: h("p", { class: "quiz-waiting state-line" }, spinner(), "Quiz being written…"),
    loading: h("p", { class: "quiz-waiting muted" }, "Loading the quiz…"),
    failedText: h("span"),
    retry: h(
      "button",
      { type: "button", class: "button", onclick: () => actions.retryQuiz(course.id, lesson.id) },
      "Retry quiz",
    ),
    questions: h("div", { class: "quiz-questions" }),
    missing: h("p", { class: "form-error", role: "alert", hidden: true }),
    check: h("button", { type: "submit", class: "button primary" }, "Check"),
    again: h("button", { type: "button", class: "button", hidden: true }, "Try again"),
    // Announced when it changes: "3 of 4 right".
    score: h("p", { class: "quiz-score", role: "status", "aria-live": "polite" }),
    key: null, // the questions shown, as JSON: rebuilt only when they change
    quiz: null,
  };
  parts.failed = h(
    "div",
    { class: "quiz-failed" },
    h(
      "p",
      { class: "error-text" },
      h("strong", null, "The quiz could not be written: "),
      parts.failedText,
    ),
    parts.retry,
  );
  parts.form = h(
    "form",
    { class: "quiz-form", novalidate: true, "aria-labelledby": parts.heading.id },
    h(
      "p",
      { class: "hint quiz-hint" },
      "Pick one answer to each question, then check them.",
    ),
    parts.questions,
    parts.missing,
    h("div", { class: "actions" }, parts.check, parts.again),
    parts.score,
  );
  parts.form.addEventListener("submit", (event) => {
    event.preventDefault();
    check(parts);
  });
  parts.again.addEventListener("click", () => reset(parts, { focus: true }));
  const section = h(
    "section",
    { class: "quiz", id, "aria-labelledby": parts.heading.id, hidden: true },
    parts.heading,
    parts.waiting,
    parts.loading,
    parts.failed,
    parts.form,
  );
  section.parts = parts;
  return section;
}

export function updateQuiz(section, lesson, state) {
  const { parts } = section;
  const status = lesson.quiz_status;
  const shown = lesson.content_status === "complete" && status !== "none";
  setHidden(section, !shown);
  if (!shown) return;
  const loaded = quizOf(lesson);
  const questions = status === "complete" ? (loaded?.questions ?? null) : null;
  setAttr(section, "data-quiz-status", status);
  setHidden(parts.waiting, status !== "pending" && status !== "generating");
  setHidden(parts.loading, !(status === "complete" && questions === null));
  setHidden(parts.failed, status !== "error");
  setText(parts.failedText, loaded?.error ?? lesson.quiz_error ?? "");
  parts.retry.disabled = state.busy.has(`quiz:${lesson.id}`);
  setHidden(parts.form, questions === null);
  if (questions === null) return;
  const key = JSON.stringify(questions);
  if (parts.key !== key) {
    parts.key = key;
    parts.quiz = questions;
    parts.questions.replaceChildren(
      ...questions.map((question, index) =>
        buildQuestion(lesson.id, question, index, questions.length),
      ),
    );
    reset(parts, { focus: false });
  }
}

function buildQuestion(lessonId, question, index, total) {
  const name = `quiz-${lessonId}-q${index + 1}`;
  const feedback = h("p", { class: "quiz-feedback", id: `${name}-feedback`, hidden: true });
  const choices = question.choices.map((choice, value) =>
    h(
      "label",
      { class: "choice quiz-choice" },
      h("input", { type: "radio", name, value }),
      h(
        "span",
        { class: "choice-text" },
        choice,
        // Said after the choice once checked: "your answer, wrong", "the right answer".
        h("span", { class: "choice-mark" }),
      ),
    ),
  );
  return h(
    "fieldset",
    { class: "quiz-question", dataset: { index }, "aria-describedby": feedback.id },
    h(
      "legend",
      null,
      h("span", { class: "quiz-number" }, `Question ${index + 1} of ${total}`),
      h("span", { class: "quiz-text" }, question.question),
    ),
    h("div", { class: "quiz-choices" }, ...choices),
    feedback,
  );
}

function chosen(fieldset) {
  const picked = fieldset.querySelector("input:checked");
  return picked ? Number(picked.value) : null;
}

function check(parts) {
  const fieldsets = [...parts.questions.children];
  const unanswered = fieldsets.filter((fieldset) => chosen(fieldset) === null);
  if (unanswered.length) {
    const numbers = unanswered.map((fieldset) => Number(fieldset.dataset.index) + 1);
    setText(
      parts.missing,
      numbers.length === 1
        ? `Answer question ${numbers[0]} too, then check.`
        : `Answer questions ${listed(numbers)} too, then check.`,
    );
    setHidden(parts.missing, false);
    unanswered[0].querySelector("input").focus();
    return;
  }
  setHidden(parts.missing, true);
  let right = 0;
  const wrong = [];
  fieldsets.forEach((fieldset, index) => {
    const question = parts.quiz[index];
    const answer = chosen(fieldset);
    const correct = answer === question.answer;
    if (correct) right += 1;
    else wrong.push(index + 1);
    setAttr(fieldset, "data-result", correct ? "right" : "wrong");
    const labels = fieldset.querySelectorAll(".quiz-choice");
    labels.forEach((label, value) => {
      const mark = label.querySelector(".choice-mark");
      let said = "";
      let kind = null;
      if (value === question.answer) {
        kind = "answer";
        said = correct ? "your answer, right" : "the right answer";
      } else if (value === answer) {
        kind = "wrong";
        said = "your answer, wrong";
      }
      setAttr(label, "data-mark", kind);
      setText(mark, said ? ` (${said})` : "");
      // Answers stay as they were until "Try again".
      label.querySelector("input").disabled = true;
    });
    const feedback = fieldset.querySelector(".quiz-feedback");
    const expected = question.choices[question.answer];
    const verdict = correct
      ? h("strong", null, "✓ Right. ")
      : h("strong", null, `✗ Not quite: the answer is “${expected}”. `);
    feedback.replaceChildren(verdict, question.explanation);
    setHidden(feedback, false);
  });
  const total = fieldsets.length;
  const detail = wrong.length
    ? ` Wrong: ${wrong.length === 1 ? "question" : "questions"} ${listed(wrong)}.`
    : " All of them!";
  parts.score.replaceChildren(
    h("span", { class: "quiz-score-count" }, `${right} of ${total} right`),
    h("span", { class: "visually-hidden" }, detail),
  );
  setAttr(parts.score, "data-perfect", right === total ? "" : null);
  setHidden(parts.check, true);
  setHidden(parts.again, false);
  parts.again.focus();
}

function reset(parts, { focus }) {
  parts.form.reset();
  for (const fieldset of parts.questions.children) {
    setAttr(fieldset, "data-result", null);
    for (const label of fieldset.querySelectorAll(".quiz-choice")) {
      setAttr(label, "data-mark", null);
      setText(label.querySelector(".choice-mark"), "");
      label.querySelector("input").disabled = false;
    }
    const feedback = fieldset.querySelector(".quiz-feedback");
    feedback.replaceChildren();
    setHidden(feedback, true);
  }
  setHidden(parts.missing, true);
  parts.score.replaceChildren();
  setAttr(parts.score, "data-perfect", null);
  setHidden(parts.check, false);
  setHidden(parts.again, true);
  if (focus) parts.questions.querySelector("input")?.focus();
}

/** "2", "2 and 4", "1, 2 and 4" */
function listed(numbers) {
  if (numbers.length === 1) return String(numbers[0]);
  return `${numbers.slice(0, -1).join(", ")} and ${numbers.at(-1)}`;
}
