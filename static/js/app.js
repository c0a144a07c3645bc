// The entry point: wires the state, the live updates, the address and the views.
//
// Data flows one way. The server's answers and events change the store (store.js);
// every change schedules one render, which brings each part of the page up to date
// from the store; user actions call the API and let the answers flow back the same way.

import { api, ApiError } from "./api.js";
import { setAttr, setText } from "./dom.js";
import { Live } from "./live.js";
import * as router from "./router.js";
import * as store from "./store.js";
import { initForm, renderForm } from "./views/form.js";
import { renderMain } from "./views/main.js";
import { renderNotices } from "./views/notices.js";
import { initTree, renderTree } from "./views/tree.js";

// A knob for tests and operators, set by a script that runs before this module, e.g.
// window.coursegenConfig = {pollInterval: 300}. The default polls every 2 s.
const config = { pollInterval: 2000, ...window.coursegenConfig };

const $ = (id) => document.getElementById(id);
const elements = {
  form: $("generate-form"),
  tree: $("tree"),
  treeEmpty: $("tree-empty"),
  main: $("main"),
  notices: $("notices"),
  banner: $("demo-banner"),
  liveStatus: $("live-status"),
};

const live = new Live(config);

/** Run an action against the API once at a time; a failure becomes a notice. */
async function run(busyKey, failure, work) {
  if (store.state.busy.has(busyKey)) return;
  store.setBusy(busyKey, true);
  try {
    await work();
    live.nudge();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    store.notify({ kind: "error", text: `${failure}: ${error.message}` });
  } finally {
    store.setBusy(busyKey, false);
  }
}

const actions = {
  async generate(topic, lessons) {
    store.set({ form: { busy: true } });
    const ticket = store.ticket();
    try {
      const answer = await api.generate(topic, lessons);
      // In the tree at once; the stream's events for it may come before or after this.
      store.applyCourse(answer.course, ticket);
      store.set({ form: { busy: false, message: answer.message } });
      router.go({ name: "course", courseId: answer.course_id });
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      store.set({ form: { busy: false, error: `Could not start the course: ${error.message}` } });
      return false;
    }
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

  keep() {
    store.set({ confirmDelete: null });
    elements.main.querySelector(".course-page .danger")?.focus();
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
  elements.banner.hidden = state.health?.provider !== "demo";
  const seconds = Math.round(config.pollInterval / 100) / 10;
  setText(elements.liveStatus, LIVE_WORDS[state.live.mode](seconds));
  setAttr(elements.liveStatus, "data-mode", state.live.mode);
  renderForm(elements.form, state.form);
  renderTree(elements.tree, elements.treeEmpty, state);
  document.title = renderMain(elements.main, state, actions);
  renderNotices(elements.notices, state.notices, {
    onAction: (notice) => actions.retryJob(notice.courseId),
    onDismiss: (notice) => store.dismiss(notice.id),
  });
  document.body.dataset.view = state.route.name;
}

/** What the page on show needs from the server: a complete lesson's HTML. */
function fetchWhatIsShown(state) {
  const { route } = state;
  if (route.name !== "lesson") return;
  const lesson = store.findLesson(state.courses.get(route.courseId), route.lessonId);
  if (lesson?.content_status === "complete" && store.contentOf(lesson) === null)
    live.loadContent(lesson);
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
    if (!narrow.matches && elements.tree.contains(document.activeElement)) return;
    elements.main.querySelector(".page-title")?.focus({ preventScroll: true });
  });
}

store.subscribe(render);
store.subscribe(fetchWhatIsShown);
initForm(elements.form, { generate: actions.generate, invalid: actions.invalid });
initTree(elements.tree);
router.start(navigated);
api.health().then(
  (health) => store.set({ health }),
  () => {}, // only the demo banner depends on it; the course list reports unreachability
);
live.start();
