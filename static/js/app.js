// The entry point: wires the state, the live updates, the address and the views.
//
// Data flows one way. The server's answers and events change the store (store.js);
// every change schedules one render, which brings each part of the page up to date
// from the store; user actions call the API and let the answers flow back the same way.

import { api, ApiError, onSignedOut } from "./api.js";
import { authoringActions } from "./authoring.js";
import { setAttr, setText } from "./dom.js";
import { Live } from "./live.js";
import * as router from "./router.js";
import * as store from "./store.js";
import { initForm, renderForm } from "./views/form.js";
import { renderMain } from "./views/main.js";
import { renderNotices } from "./views/notices.js";
import { setHidden } from "./views/parts.js";
import { initSignIn, renderSignIn } from "./views/signin.js";
import { initTree, renderTree } from "./views/tree.js";
import { Writing } from "./writing.js";

// A knob for tests and operators, set by a script that runs before this module, e.g.
// window.coursegenConfig = {pollInterval: 300}. The default polls every 2 s.
const config = { pollInterval: 2000, ...window.coursegenConfig };

const $ = (id) => document.getElementById(id);
const elements = {
  form: $("generate-form"),
  tree: {
    tree: $("tree"),
    empty: $("tree-empty"),
    search: $("course-search"),
    status: $("tree-found"),
    more: $("tree-more"),
    moreButton: $("tree-more-button"),
    moreText: $("tree-more-text"),
  },
  main: $("main"),
  notices: $("notices"),
  banner: $("demo-banner"),
  liveStatus: $("live-status"),
  layout: document.querySelector(".layout"),
  toCourses: document.querySelector(".to-courses"),
  skipLink: document.querySelector(".skip-link"),
  signIn: $("signin"),
  signInForm: $("signin-form"),
  signOut: $("sign-out"),
};

// Replaced by a new one on each sign-in (see begin).
let live = new Live(config);
// The lesson on show while it is being written: its own stream, one lesson at a time.
const writing = new Writing(config);

// Whether this browser signed in to a server that needs its token. Only a hint, for
// showing "Sign out" after a reload: the session cookie is HttpOnly, and the server
// alone decides (a 401 makes the page sign in, whatever the hint says).
const SESSION_HINT = "coursegen:signed-in";

function hinted() {
  try {
    return localStorage.getItem(SESSION_HINT) !== null;
  } catch {
    return false; // storage is off (a privacy setting): "Sign out" shows after a sign-in
  }
}

function hint(signedIn) {
  try {
    if (signedIn) localStorage.setItem(SESSION_HINT, "1");
    else localStorage.removeItem(SESSION_HINT);
  } catch {
    // As above: the hint is a convenience, the cookie works without it.
  }
}

/** Run an action against the API once at a time; a failure becomes a notice. */
async function run(busyKey, failure, work) {
  if (store.state.busy.has(busyKey)) return;
  store.setBusy(busyKey, true);
  try {
    await work();
    live.nudge();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // A 401 has already put the sign-in in place of the page: no notice to come back to.
    if (error.status !== 401) store.notify({ kind: "error", text: `${failure}: ${error.message}` });
  } finally {
    store.setBusy(busyKey, false);
  }
}

const actions = {
  // Regenerating with instructions, quizzes, hand and outline edits, versions.
  ...authoringActions({ run, live: () => live }),

  async generate({ topic, lessons, mode, options }) {
    // The last course's estimate goes: the next one's replaces it.
    store.set({ form: { busy: true }, estimate: null });
    const ticket = store.ticket();
    try {
      const answer = await api.generate(topic, lessons, mode, options);
      // In the tree at once; the stream's events for it may come before or after this.
      store.applyCourse(answer.course, ticket);
      store.addToLibrary(answer.course_id);
      store.set({
        form: { busy: false, message: answer.message },
        estimate: answer.estimate
          ? { courseId: answer.course_id, maxCostUsd: answer.estimate.max_cost_usd }
          : null,
      });
      router.go({ name: "course", courseId: answer.course_id });
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const message = `Could not start the course: ${error.message}`;
      store.set({ form: { busy: false, error: error.status === 401 ? null : message } });
      return false;
    }
  },

  /** Show the courses whose texts hold these words (none: the whole library). */
  search(text) {
    return live.library.search(text);
  },

  /** The next page of courses, as the end of the list comes into view. */
  more() {
    return live.library.more();
  },

  invalid({ error, field }) {
    store.set({ form: { busy: false, error, field } });
  },

  retryLesson(courseId, lessonId) {
    return run(`lesson:${lessonId}`, "Could not retry the lesson", async () => {
      // Before asking: a quick retry may finish, and be announced, before its answer.
      store.dismissCourseNotices(courseId);
      await api.retryLesson(lessonId);
    });
  },

  retryJob(courseId) {
    const job = store.state.courses.get(courseId)?.job;
    if (!job) return;
    return run(`retry:${courseId}`, "Could not retry the course", async () => {
      store.dismissCourseNotices(courseId); // before asking, as above
      await api.retryJob(job.job_id);
    });
  },

  cancel(courseId) {
    const job = store.state.courses.get(courseId)?.job;
    if (!job) return;
    return run(`cancel:${courseId}`, "Could not cancel", () => api.cancelJob(job.job_id));
  },

  askDelete(courseId) {
    store.set({ confirmDelete: courseId });
    // The question has focus, so a keyboard user answers it next.
    requestAnimationFrame(() => elements.main.querySelector(".confirm button")?.focus());
  },

  dismissEstimate() {
    store.setEstimate(null);
    elements.main.querySelector(".course-page .page-title")?.focus({ preventScroll: true });
  },

  keep() {
    store.set({ confirmDelete: null });
    elements.main.querySelector(".course-page .danger")?.focus();
  },

  /** Trade the token for a session cookie; true once signed in. */
  async signIn(token) {
    if (store.state.auth.busy) return false;
    if (!token) {
      store.setAuth({ error: "Enter the server's API token." });
      return false;
    }
    store.setAuth({ busy: true, error: null });
    try {
      await api.signIn(token);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404) {
        // Sign-in is off: the server has no token (any more), so it needs none.
        hint(false);
        store.setAuth({ mode: "open", busy: false });
        begin();
        return true;
      }
      store.setAuth({ busy: false, error: `Could not sign in: ${error.message}` });
      return false;
    }
    hint(true);
    store.setAuth({ mode: "signed-in", busy: false });
    begin();
    // Once the page is back in place of the panel (rendered in the microtask before).
    queueMicrotask(() => elements.main.focus({ preventScroll: true }));
    return true;
  },

  signOut() {
    return run("sign-out", "Could not sign out", async () => {
      await api.signOut();
      signedOut();
    });
  },

  confirmDelete(courseId) {
    const title = store.state.courses.get(courseId)?.title ?? "the course";
    return run(`delete:${courseId}`, "Could not delete the course", async () => {
      try {
        await api.deleteCourse(courseId);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error; // gone already
      }
      store.removeCourse(courseId);
      store.notify({ kind: "info", text: `Deleted “${title}”.` });
      const route = store.state.route;
      // The old address no longer exists, so Back should not lead to it.
      if (route.courseId === courseId) router.go({ name: "home" }, { replace: true });
    });
  },
};

// -- rendering --------------------------------------------------------------------------

const LIVE_WORDS = {
  connecting: () => "Connecting…",
  stream: () => "Live",
  reconnecting: () => "Reconnecting…",
  polling: (seconds) => `Live stream unavailable: checking every ${seconds} s`,
  offline: () => "Server unreachable: retrying",
};

function render(state) {
  const locked = state.auth.mode === "signed-out";
  renderSignIn(
    elements.signIn,
    elements.signInForm,
    elements.signOut,
    state.auth,
    state.busy.has("sign-out"),
  );
  // Signed out, nothing of the page is there to use: no form, no tree, no course actions.
  setHidden(elements.layout, locked);
  setHidden(elements.liveStatus, locked);
  setHidden(elements.toCourses, locked);
  setAttr(elements.skipLink, "href", locked ? "#signin" : "#main");
  elements.banner.hidden = state.health?.provider !== "demo";
  const seconds = Math.round(config.pollInterval / 100) / 10;
  setText(elements.liveStatus, LIVE_WORDS[state.live.mode](seconds));
  setAttr(elements.liveStatus, "data-mode", state.live.mode);
  renderForm(elements.form, state.form);
  renderTree(elements.tree, state);
  const title = renderMain(elements.main, state, actions);
  if (focusPending) {
    // Unless the person has gone on through the tree meanwhile.
    const inTree = !narrow.matches && elements.tree.tree.contains(document.activeElement);
    focusPending = !inTree && !focusTitle();
  }
  document.title = locked ? "Sign in · coursegen" : title;
  renderNotices(elements.notices, state.notices, {
    onAction: (notice) => actions.retryJob(notice.courseId),
    onDismiss: (notice) => store.dismiss(notice.id),
  });
  document.body.dataset.view = state.route.name;
}

/**
 * What the page on show needs from the server: the lessons of the open course and of
 * every other one the tree shows expanded; a lesson's text as it is written, or its HTML.
 */
function fetchWhatIsShown(state) {
  const { route } = state;
  if (state.loaded && state.auth.mode !== "signed-out") {
    if (route.courseId !== undefined) live.want(route.courseId);
    for (const course of state.courses.values()) {
      if (!course.lessons && store.isExpanded(course)) live.want(course.id);
    }
  }
  const shown =
    route.name === "lesson" && state.auth.mode !== "signed-out"
      ? store.findLesson(state.courses.get(route.courseId), route.lessonId)
      : null;
  // Leaving the lesson page (or its lesson going away) closes its stream.
  writing.follow(shown);
  // A finished lesson: its HTML (if complete) and how it was made, once per run.
  const finished = shown?.content_status === "complete" || shown?.content_status === "error";
  if (finished && store.loadedOf(shown) === null) live.loadContent(shown);
  // Its quiz, once written (or failed): the questions, or why there are none.
  const quizDone = shown?.quiz_status === "complete" || shown?.quiz_status === "error";
  if (quizDone && shown.content_status === "complete" && store.quizOf(shown) === null) {
    live.loadQuiz(shown);
  }
}

let arrived = false;
// The stylesheet's one-column layout, where the page comes before the tree.
const narrow = window.matchMedia("(max-width: 48rem)");

function navigated(route) {
  store.set({ route, confirmDelete: null });
  if (!arrived) {
    arrived = true; // the first address is where the page starts; nothing to move
    return;
  }
  // Once the new page is rendered: show its top, and announce it by moving the focus to
  // its heading, unless the person is moving through the tree beside it.
  queueMicrotask(() => {
    window.scrollTo(0, 0);
    if (!narrow.matches && elements.tree.tree.contains(document.activeElement)) return;
    focusPending = !focusTitle();
  });
}

// A page still loading (its course, or its code) gets the focus once it is there.
let focusPending = false;

function focusTitle() {
  const title = elements.main.querySelector(".page-title");
  title?.focus({ preventScroll: true });
  return Boolean(title);
}

// -- signing in and out -----------------------------------------------------------------

/** The server wants its token: stop following it, forget what it said, ask for the token. */
function signedOut() {
  if (store.state.auth.mode === "signed-out") return; // another request's 401 said so already
  live.stop();
  writing.stop();
  hint(false);
  elements.tree.search.value = ""; // what was searched for is forgotten too
  store.forget();
  store.setAuth({ mode: "signed-out", busy: false, error: null });
}

/** Load everything and follow the changes, as on a fresh start. */
async function begin() {
  live.stop();
  const current = new Live(config);
  live = current;
  // Asked first and alone, so that a server wanting its token refuses one request only.
  try {
    store.set({ health: await api.health() });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return; // signed out; signing in begins again
    // Only the demo banner depends on it; the course list reports unreachability.
  }
  current.start(); // nothing, if a sign-out or another sign-in came first
}

// Another tab signed in or out: the session cookie is the same for every tab.
window.addEventListener("storage", (event) => {
  if (event.key !== SESSION_HINT) return;
  const mode = store.state.auth.mode;
  if (event.newValue === null && mode === "signed-in") signedOut();
  else if (event.newValue !== null && mode === "signed-out") {
    store.setAuth({ mode: "signed-in", busy: false, error: null });
    begin();
  }
});

if (hinted()) store.setAuth({ mode: "signed-in" });
onSignedOut(signedOut);
store.subscribe(render);
store.subscribe(fetchWhatIsShown);
initForm(elements.form, { generate: actions.generate, invalid: actions.invalid });
initSignIn(elements.signInForm, elements.signOut, {
  signIn: actions.signIn,
  signOut: actions.signOut,
});
initTree(elements.tree, { search: actions.search, more: actions.more });
router.start(navigated);
begin();
