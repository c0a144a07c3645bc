// The coursegen SCORM 1.2 player: the only script in the package. It shows one page of
// the course at a time, scores the quizzes, and, when it finds an LMS, reports progress
// to it and resumes where the learner left off. Without an LMS the course still reads.
"use strict";

(function () {
  // SCORM 1.2 gives cmi.suspend_data 4,096 characters (CMIString4096).
  const SUSPEND_LIMIT = 4096;
  // The SCORM 1.2 API discovery algorithm climbs at most this many parent windows.
  const MAX_PARENTS = 7;

  const body = document.body;
  const pages = Array.from(document.querySelectorAll("section.page"));
  const lessons = pages.filter((page) => page.classList.contains("lesson"));
  const quizzes = Array.from(document.querySelectorAll("form.quiz"));
  const questionLists = new Map(
    quizzes.map((form) => [form, Array.from(form.querySelectorAll("fieldset.question"))]),
  );
  const questionsOf = (form) => questionLists.get(form);
  const questionCount = quizzes.reduce((sum, form) => sum + questionsOf(form).length, 0);
  // A checked quiz's answers, one digit per question: what suspend_data keeps of it.
  const given = new Map();
  let right = 0; // questions answered right, over all checked quizzes
  const tracking = document.getElementById("tracking");
  const started = Date.now();
  const read = new Set();
  let mastery = Number(body.dataset.mastery);
  let current = pages[0];
  let lms = null;
  let ended = false;
  let finishedBefore = false; // the LMS already holds a final status from an earlier session

  // -- the LMS -------------------------------------------------------------------------

  // SCORM 1.2 RTE: the SCO looks for `API` in its window's parents, then in its opener's.
  function apiAbove(win) {
    try {
      for (let climbed = 0; win; climbed += 1) {
        if (win.API) return win.API;
        if (!win.parent || win.parent === win || climbed >= MAX_PARENTS) return null;
        win = win.parent;
      }
    } catch (error) {
      // A window of another origin cannot be looked into: no API there.
    }
    return null;
  }

  function findApi() {
    return apiAbove(window) || (window.opener ? apiAbove(window.opener) : null);
  }

  function connect() {
    const api = findApi();
    if (!api || String(api.LMSInitialize("")) !== "true") return null;
    return api;
  }

  function lmsGet(name) {
    return lms ? String(lms.LMSGetValue(name)) : "";
  }

  function lmsSet(name, value) {
    if (!lms) return;
    if (String(lms.LMSSetValue(name, String(value))) !== "true") {
      const code = lms.LMSGetLastError();
      console.warn(`LMS refused ${name}: ${code} ${lms.LMSGetErrorString(code)}`);
    }
  }

  // -- what the learner has done ---------------------------------------------------------

  function checked(form) {
    return given.has(form);
  }

  function score() {
    return questionCount ? Math.round((100 * right) / questionCount) : 0;
  }

  function status() {
    const done = lessons.every((page) => read.has(page.id)) && quizzes.every(checked);
    if (!done) return "incomplete";
    if (!quizzes.length) return "completed";
    return score() >= mastery ? "passed" : "failed";
  }

  // suspend_data: "1~<quiz key>~<lessons read, 4 to a hex digit>~<one digit per question>".
  // Answers go quiz by quiz and a quiz is saved whole or not at all, so cutting them to
  // fit the limit never restores half a quiz; "." stands for a quiz not checked yet.
  function suspendData() {
    let bits = lessons.map((page) => (read.has(page.id) ? "1" : "0")).join("");
    let hex = "";
    for (let i = 0; i < bits.length; i += 4) {
      hex += parseInt(bits.slice(i, i + 4).padEnd(4, "0"), 2).toString(16);
    }
    hex = hex.replace(/0+$/, "");
    let data = `1~${body.dataset.quizKey}~${hex}~`;
    if (data.length > SUSPEND_LIMIT) data = `1~${body.dataset.quizKey}~~`;
    let answers = "";
    for (const form of quizzes) {
      const part = given.get(form) || ".".repeat(questionsOf(form).length);
      if (data.length + answers.length + part.length > SUSPEND_LIMIT) break;
      answers += part;
    }
    return data + answers.replace(/\.+$/, "");
  }

  function restore(data) {
    const [version, key, hex, answers] = data.split("~");
    if (version !== "1" || key !== body.dataset.quizKey || answers === undefined) return;
    lessons.forEach((page, index) => {
      const digit = parseInt(hex.charAt(Math.floor(index / 4)) || "0", 16);
      if (digit & (8 >> index % 4)) read.add(page.id);
    });
    let at = 0;
    for (const form of quizzes) {
      const questions = questionsOf(form);
      const part = answers.slice(at, at + questions.length);
      at += questions.length;
      if (part.length !== questions.length) continue;
      const inputs = questions.map((q, i) => q.querySelector(`input[value="${part.charAt(i)}"]`));
      if (inputs.every(Boolean)) {
        inputs.forEach((input) => (input.checked = true));
        check(form);
      }
    }
  }

  // -- the page --------------------------------------------------------------------------

  function check(form) {
    form.classList.add("checked");
    const questions = questionsOf(form);
    let answers = "";
    let rightHere = 0;
    for (const question of questions) {
      const chosen = question.querySelector("input:checked");
      const correct = chosen.value === question.dataset.answer;
      answers += chosen.value;
      rightHere += correct ? 1 : 0;
      question.classList.add(correct ? "right" : "wrong");
      question.querySelector("details").open = true;
      question.querySelectorAll("input").forEach((input) => (input.disabled = true));
    }
    form.querySelector("button").disabled = true;
    form.querySelector(".quiz-result").textContent = `${rightHere} of ${questions.length} right.`;
    given.set(form, answers);
    right += rightHere;
  }

  function onSubmit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    if (checked(form)) return;
    if (questionsOf(form).some((q) => !q.querySelector("input:checked"))) {
      form.querySelector(".quiz-result").textContent = "Answer every question first.";
      return;
    }
    check(form);
    report();
  }

  function show(id) {
    current = pages.find((page) => page.id === id) || current;
    for (const page of pages) page.classList.toggle("current", page === current);
    if (current.classList.contains("lesson")) read.add(current.id);
    for (const link of document.querySelectorAll("#contents a")) {
      const target = link.getAttribute("href").slice(1);
      link.parentElement.classList.toggle("read", read.has(target));
      if (target === current.id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    window.scrollTo(0, 0);
    report();
  }

  function describe() {
    const parts = [`Read ${lessons.filter((page) => read.has(page.id)).length} of ${lessons.length} lessons.`];
    const done = quizzes.filter(checked).length;
    if (quizzes.length) {
      parts.push(`Quizzes checked: ${done} of ${quizzes.length}; score ${score()}% (pass mark ${mastery}%).`);
    }
    const state = status();
    if (state !== "incomplete") parts.push(`Course ${state}.`);
    parts.push(lms ? "Progress is saved in your LMS." : "No LMS found: progress is not saved.");
    tracking.textContent = parts.join(" ");
  }

  function report() {
    describe();
    if (!lms || ended) return;
    lmsSet("cmi.core.lesson_location", current.id);
    lmsSet("cmi.suspend_data", suspendData());
    if (quizzes.some(checked)) {
      lmsSet("cmi.core.score.min", 0);
      lmsSet("cmi.core.score.max", 100);
      lmsSet("cmi.core.score.raw", score());
    }
    const state = status();
    if (state !== "incomplete" || !finishedBefore) lmsSet("cmi.core.lesson_status", state);
    lms.LMSCommit("");
  }

  // CMITimespan: HHHH:MM:SS.SS
  function sessionTime() {
    const seconds = Math.floor((Date.now() - started) / 1000);
    const pad = (n, width) => String(n).padStart(width, "0");
    const hours = Math.min(9999, Math.floor(seconds / 3600));
    return `${pad(hours, 4)}:${pad(Math.floor(seconds / 60) % 60, 2)}:${pad(seconds % 60, 2)}.00`;
  }

  function end() {
    if (!lms || ended) return;
    lmsSet("cmi.core.session_time", sessionTime());
    // "suspend" keeps the attempt open, so the next launch resumes it.
    lmsSet("cmi.core.exit", status() === "incomplete" ? "suspend" : "");
    lms.LMSCommit("");
    lms.LMSFinish("");
    ended = true;
  }

  function start() {
    document.documentElement.classList.add("player");
    lms = connect();
    let resumeAt = "";
    if (lms) {
      const lmsMastery = lmsGet("cmi.student_data.mastery_score");
      if (lmsMastery !== "" && !Number.isNaN(Number(lmsMastery))) mastery = Number(lmsMastery);
      finishedBefore = ["completed", "passed", "failed"].includes(lmsGet("cmi.core.lesson_status"));
      restore(lmsGet("cmi.suspend_data"));
      resumeAt = lmsGet("cmi.core.lesson_location");
    }
    for (const value of document.querySelectorAll(".mastery-value")) value.textContent = mastery;
    for (const form of quizzes) form.addEventListener("submit", onSubmit);
    window.addEventListener("hashchange", () => show(window.location.hash.slice(1)));
    window.addEventListener("pagehide", end);
    window.addEventListener("beforeunload", end);
    show(resumeAt || window.location.hash.slice(1));
  }

  start();
})();
