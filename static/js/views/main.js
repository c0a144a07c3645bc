// The main area: whichever page the address names, built once per page and then kept
// up to date in place, so that focus, selection and scroll survive live updates.

import { h } from "../dom.js";
import { changed, findLesson, isGone } from "../store.js";

// The course and lesson pages, with all they bring (the outline, the editor, versions,
// quizzes, Markdown), are loaded after the first paint, or at once for their address:
// the library shows without waiting for them.
let pages = null;
let loading = null;

function loadPages() {
  loading ??= Promise.all([import("./course.js"), import("./lesson.js")]).then(
    ([course, lesson]) => {
      pages = { ...course, ...lesson };
      changed();
    },
    () => {
      loading = null; // asked again at the next render
    },
  );
}

/** Render the page for `state.route`; returns its title for the document. */
export function renderMain(main, state, actions) {
  const route = state.route;
  const course = route.courseId !== undefined ? state.courses.get(route.courseId) : null;
  if (state.loaded || route.courseId !== undefined) loadPages();

  if (route.name === "home") {
    show(main, "home", homePage);
    return "coursegen";
  }
  if (route.name === "course" && course && pages) {
    const page = show(main, `course:${course.id}`, () => pages.buildCourse(course, actions));
    pages.updateCourse(page, course, state);
    return `${course.title} · coursegen`;
  }
  if (route.name === "lesson" && course?.lessons && pages) {
    const lesson = findLesson(course, route.lessonId);
    if (lesson) {
      const build = () => pages.buildLesson(course, lesson, actions);
      const page = show(main, `lesson:${lesson.id}`, build);
      pages.updateLesson(page, course, lesson, state);
      return `${lesson.title} · ${course.title} · coursegen`;
    }
  }
  // Not there (yet): still loading (the course is fetched when its address is opened, the
  // page's code after the first paint), or deleted, or never existed.
  const gone = route.courseId === undefined || isGone(route.courseId);
  const waiting = !gone && (!pages || !course?.lessons);
  if (!state.loaded || waiting) {
    show(main, "loading", () => h("p", { class: "muted" }, "Loading…"));
    return "coursegen";
  }
  show(main, "missing", missingPage);
  return "Not found · coursegen";
}

/** Put the page with this key in place, building it only if another page is showing. */
function show(main, key, build) {
  if (main.dataset.page !== key) {
    main.dataset.page = key;
    main.replaceChildren(build());
  }
  return main.firstElementChild;
}

function homePage() {
  return h(
    "section",
    { class: "home-page" },
    h("h1", { class: "page-title", tabindex: -1 }, "Courses, written while you read"),
    h(
      "p",
      null,
      "Type a topic and choose Generate course. The outline appears at once; each lesson is ",
      "written in the background and can be opened while the others are still being written.",
    ),
    h("p", { class: "muted" }, "Pick a course or lesson from the list to read it."),
  );
}

function missingPage() {
  return h(
    "section",
    { class: "missing-page" },
    h("h1", { class: "page-title", tabindex: -1 }, "Nothing here"),
    h("p", null, "This course or lesson does not exist; it may have been deleted."),
    h("p", null, h("a", { href: "#/" }, "Back to the start")),
  );
}
