// The course tree: every course, newest first, with its lessons and their status.
// It follows the WAI-ARIA navigation treeview pattern: links are the tree items, one of
// them is in the tab order, and the arrow keys move, fold and unfold.

import { h, setAttr, setText, syncKeyed } from "../dom.js";
import { courseHref, lessonHref } from "../router.js";
import * as store from "../store.js";
import { breakdown, money, moneyOptions, spent } from "./cost.js";
import { LESSON_STATUS, marker, setHidden, updateMarker, updateProgress } from "./parts.js";

export function initTree(root) {
  root.addEventListener("keydown", onKeydown);
  root.addEventListener("click", onClick);
  root.addEventListener("focusin", (event) => {
    const item = event.target.closest('[role="treeitem"]');
    if (item) {
      root.dataset.focusKey = item.dataset.item;
      rovingTabindex(root);
    }
  });
}

export function renderTree(root, empty, state) {
  const courses = store.coursesNewestFirst();
  syncKeyed(
    root,
    courses,
    (course) => course.id,
    createCourse,
    (el, course) => updateCourse(el, course, state),
  );
  setHidden(empty, !(state.loaded && courses.length === 0));
  rovingTabindex(root);
}

function createCourse(course) {
  const group = h("ul", { role: "group", class: "tree-group", id: `tree-group-${course.id}` });
  const item = h(
    "a",
    {
      role: "treeitem",
      class: "tree-item tree-course-item",
      "aria-level": 1,
      "aria-owns": group.id,
      tabindex: -1,
      dataset: { item: `c${course.id}` },
    },
    h("span", { class: "twisty", "aria-hidden": "true" }),
    h("span", { class: "tree-label" }),
    costTag(),
    // The bar only repeats the words next to it, so assistive technology reads the words.
    h(
      "span",
      { class: "tree-progress", hidden: true },
      h("progress", { max: 100, value: 0, "aria-hidden": "true" }),
      h("span", { class: "progress-count" }),
    ),
  );
  return h(
    "li",
    { role: "none", class: "tree-course", dataset: { courseId: course.id } },
    item,
    group,
  );
}

function updateCourse(el, course, state) {
  const [item, group] = el.children;
  const [, label, cost, progress] = item.children;
  const [bar, count] = progress.children;
  const expanded = !state.collapsed.has(course.id);
  const route = state.route;
  setAttr(item, "href", courseHref(course.id));
  setAttr(item, "aria-expanded", String(expanded));
  setAttr(
    item,
    "aria-current",
    route.name === "course" && route.courseId === course.id ? "page" : null,
  );
  setText(label, course.title);
  const options = moneyOptions(state);
  const bill = updateCost(cost, course.usage, options, course.job?.status === "running");
  setAttr(item, "title", bill);
  const job = course.job;
  // Running courses show their progress; so do those seen running here, to show them end.
  const showProgress = Boolean(job && (job.status === "running" || course.watched));
  setHidden(progress, !showProgress);
  setAttr(el, "data-job-status", job?.status ?? null);
  if (showProgress) {
    updateProgress(bar, job);
    setText(count, `${job.completed_lessons + job.failed_lessons}/${job.total_lessons}`);
    setAttr(
      count,
      "aria-label",
      `${job.completed_lessons + job.failed_lessons} of ${job.total_lessons} lessons done`,
    );
  }
  setHidden(group, !expanded);
  setAttr(group, "aria-busy", course.lessons ? null : "true");
  syncKeyed(
    group,
    course.lessons ?? [],
    (lesson) => lesson.id,
    createLesson,
    (li, lesson) => updateLesson(li, lesson, course, route, options),
  );
}

function createLesson(lesson) {
  const item = h(
    "a",
    {
      role: "treeitem",
      class: "tree-item tree-lesson-item",
      "aria-level": 2,
      tabindex: -1,
      dataset: { item: `l${lesson.id}` },
    },
    marker(),
    h("span", { class: "tree-label" }),
    h("span", { class: "visually-hidden" }),
    costTag(),
  );
  return h("li", { role: "none", class: "tree-lesson", dataset: { lessonId: lesson.id } }, item);
}

function updateLesson(li, lesson, course, route, options) {
  const item = li.firstElementChild;
  const [mark, label, word, cost] = item.children;
  const status = lesson.content_status;
  setAttr(li, "data-status", status);
  setAttr(item, "href", lessonHref(course.id, lesson.id));
  setAttr(
    item,
    "aria-current",
    route.name === "lesson" && route.lessonId === lesson.id ? "page" : null,
  );
  updateMarker(mark, status);
  setText(label, `${lesson.position}. ${lesson.title}`);
  setText(word, `, ${LESSON_STATUS[status]?.word ?? status}`);
  // A finished lesson's cost; one being written (again) is still adding to it.
  const finished = status === "complete" || status === "error";
  const bill = updateCost(cost, finished ? lesson.usage : null, options, false);
  // The hover text: the error, then the bill.
  const hover = [status === "error" ? lesson.content_error : null, bill].filter(Boolean);
  setAttr(item, "title", hover.length ? hover.join("\n\n") : null);
}

/** Small type at the end of an item: what it cost, read out as ", cost $0.0123". */
function costTag() {
  return h(
    "span",
    { class: "tree-cost", hidden: true },
    h("span", { class: "visually-hidden" }, ", cost "),
    h("span", { class: "cost-amount" }),
  );
}

/** Show what `usage` cost in `tag` (hidden if nothing was spent); returns the hover text. */
function updateCost(tag, usage, options, soFar) {
  const shown = spent(usage);
  setHidden(tag, !shown);
  if (!shown) return null;
  setText(tag.firstElementChild, soFar ? ", cost so far " : ", cost ");
  setText(tag.lastElementChild, money(usage.cost_usd, options));
  return breakdown(usage, options, soFar ? "Cost so far" : "Cost");
}

// -- keyboard ---------------------------------------------------------------------------

function visibleItems(root) {
  return [...root.querySelectorAll('[role="treeitem"]')].filter(
    (item) => !item.closest('[role="group"][hidden]'),
  );
}

/** Exactly one item is reachable with Tab: the last focused, else the current page's. */
function rovingTabindex(root) {
  const items = visibleItems(root);
  const chosen =
    items.find((item) => item.dataset.item === root.dataset.focusKey) ??
    items.find((item) => item.hasAttribute("aria-current")) ??
    items[0];
  for (const item of root.querySelectorAll('[role="treeitem"]')) {
    setAttr(item, "tabindex", item === chosen ? "0" : "-1");
  }
}

function onKeydown(event) {
  const item = event.target.closest('[role="treeitem"]');
  if (!item || event.altKey || event.ctrlKey || event.metaKey) return;
  const root = event.currentTarget;
  const items = visibleItems(root);
  const index = items.indexOf(item);
  const courseEl = item.closest(".tree-course");
  const courseId = Number(courseEl.dataset.courseId);
  const isCourse = item.classList.contains("tree-course-item");
  const expanded = item.getAttribute("aria-expanded") === "true";
  let next = null;
  switch (event.key) {
    case "ArrowDown":
      next = items[index + 1];
      break;
    case "ArrowUp":
      next = items[index - 1];
      break;
    case "Home":
      next = items[0];
      break;
    case "End":
      next = items.at(-1);
      break;
    case "ArrowRight":
      if (!isCourse) return;
      if (expanded) next = courseEl.querySelector(".tree-lesson-item");
      else store.toggleCollapsed(courseId, false);
      break;
    case "ArrowLeft":
      if (isCourse && expanded) store.toggleCollapsed(courseId, true);
      else if (!isCourse) next = courseEl.querySelector(".tree-course-item");
      break;
    case " ":
      item.click(); // Enter already follows the link; Space does too, as in other trees
      break;
    default:
      return;
  }
  event.preventDefault();
  if (next) next.focus();
}

function onClick(event) {
  const twisty = event.target.closest(".twisty");
  if (!twisty) return;
  // The triangle folds and unfolds; the rest of the item opens the course.
  event.preventDefault();
  const courseId = Number(twisty.closest(".tree-course").dataset.courseId);
  store.toggleCollapsed(courseId);
}
