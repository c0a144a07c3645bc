// The course tree: the library, newest first, a page at a time as the person scrolls, or
// the courses a search finds. Each course says in a few words how far its lessons are;
// only the open one (and one seen being written, or unfolded by hand) lists its lessons.
// It follows the WAI-ARIA navigation treeview pattern: links are the tree items, one of
// them is in the tab order, and the arrow keys move, fold and unfold.

import { h, setAttr, setText, syncKeyed } from "../dom.js";
import { courseHref, lessonHref } from "../router.js";
import * as store from "../store.js";
import { breakdown, money, moneyOptions, spent } from "./cost.js";
import { LESSON_STATUS, marker, setHidden, updateMarker, updateProgress } from "./parts.js";

// Typing waits this long for the next key before it asks the server.
const SEARCH_DELAY_MS = 150;

/**
 * `parts`: {tree, empty, search, status, more, moreButton, moreText}, the elements of
 * index.html; `actions`: {search(text), more()}.
 */
export function initTree(parts, actions) {
  const root = parts.tree;
  root.addEventListener("keydown", onKeydown);
  root.addEventListener("click", onClick);
  root.addEventListener("focusin", (event) => {
    const item = event.target.closest('[role="treeitem"]');
    if (item) {
      root.dataset.focusKey = item.dataset.item;
      rovingTabindex(root);
    }
  });
  initSearch(parts.search, root, actions.search);
  parts.moreButton.addEventListener("click", actions.more);
  // More courses once the end of the list comes into view (see watchEnd).
  if (typeof window.IntersectionObserver === "function") {
    endObserver = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) actions.more();
    });
  }
}

function initSearch(input, root, search) {
  let timer = null;
  const now = () => {
    clearTimeout(timer);
    search(input.value);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    // Emptied: the whole library is there already, nothing to wait for.
    if (!input.value.trim()) now();
    else timer = setTimeout(now, SEARCH_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      now();
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault();
      input.value = "";
      now();
    } else if (event.key === "ArrowDown") {
      // From the field down into what it found.
      const first = visibleItems(root)[0];
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  });
}

let endObserver = null;
let observed = { list: null, count: -1 };
let shownBefore = null;

export function renderTree(parts, state) {
  const root = parts.tree;
  const courses = store.treeCourses();
  syncKeyed(
    root,
    courses,
    (course) => course.id,
    createCourse,
    (el, course) => updateCourse(el, course, state),
  );
  const list = store.shownList();
  setHidden(parts.empty, !(state.loaded && !state.search && courses.length === 0));
  renderFound(parts.status, state, courses.length);
  renderMore(parts, list);
  setAttr(root, "aria-busy", state.pendingQuery === null ? null : "true");
  rovingTabindex(root);
  // Other courses now (a search answered, or emptied): from their top, not from where
  // the scrolling through the others had got to.
  if (shownBefore && list !== shownBefore) revealTop(parts);
  shownBefore = list;
  watchEnd(parts.more, list, courses.length);
}

function revealTop(parts) {
  const searchBottom = parts.search.getBoundingClientRect().bottom;
  if (parts.tree.getBoundingClientRect().top < searchBottom) {
    parts.tree.closest("nav").scrollIntoView({ block: "start" });
  }
}

/** What the search found, in words (announced: the element is a status). */
function renderFound(el, state, count) {
  const { search, pendingQuery, searchError } = state;
  let text = "";
  if (searchError) text = `Could not search: ${searchError.message}`;
  else if (pendingQuery !== null) text = "Searching…";
  else if (search && count === 0) text = `No course matches “${search.q}”.`;
  else if (search) {
    const many = search.next ? "+" : "";
    const matches = count === 1 && !many ? "course matches" : "courses match";
    text = `${count}${many} ${matches} “${search.q}”`;
  }
  // Never hidden: a status that appears along with its words may go unannounced.
  setText(el, text);
  setAttr(el, "data-kind", searchError ? "error" : null);
}

/** The end of the list: more to come (a button too, for keyboards), loading, or failed. */
function renderMore(parts, list) {
  const more = Boolean(list.ready && list.next);
  setHidden(parts.more, !more);
  setHidden(parts.moreButton, list.loadingMore);
  setText(parts.moreButton, list.error ? "Try again" : "Show more courses");
  let text = "";
  if (list.loadingMore) text = "Loading more courses…";
  else if (list.error) text = `Could not load more courses: ${list.error}`;
  setText(parts.moreText, text);
  setAttr(parts.more, "data-loading", list.loadingMore ? "true" : null);
}

/**
 * Look again whether the end of the list is in view each time the list grows: the
 * observer reports only changes, and a page that did not fill the sidebar changes none.
 */
function watchEnd(end, list, count) {
  if (!endObserver || (observed.list === list && observed.count === count)) return;
  observed = { list, count };
  endObserver.unobserve(end);
  endObserver.observe(end);
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
    // How far its lessons are, in words: "8/8", "3/8 written", "2 errors".
    h(
      "span",
      { class: "tree-summary" },
      h("span", { class: "visually-hidden" }),
      h("span", { "aria-hidden": "true" }),
    ),
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
  const expanded = store.isExpanded(course);
  const route = state.route;
  const current = route.name === "course" && route.courseId === course.id;
  const options = moneyOptions(state);
  // A folded course without its lessons shows only these: with a thousand courses in
  // the tree, a render goes over the one that changed, not over every row.
  const inputs = [
    course.title,
    course.usage,
    course.job,
    course.watched,
    course.statuses,
    course.lesson_count,
    expanded,
    current,
    options.demo,
  ];
  const same = el.inputs?.every((value, i) => value === inputs[i]);
  el.inputs = inputs;
  if (same && !course.lessons) return;
  const [item, group] = el.children;
  const [, label, cost, summary, progress] = item.children;
  const [bar, count] = progress.children;
  setAttr(item, "href", courseHref(course.id));
  setAttr(item, "aria-expanded", String(expanded));
  setAttr(item, "aria-current", current ? "page" : null);
  setText(label, course.title);
  const bill = updateCost(cost, course.usage, options, course.job?.status === "running");
  setAttr(item, "title", bill);
  const job = course.job;
  // Running courses show their progress; so do those seen running here, to show them end.
  const showProgress = Boolean(job && (job.status === "running" || course.watched));
  setHidden(progress, !showProgress);
  setAttr(el, "data-job-status", job?.status ?? null);
  // Beside a progress bar the count is there already: only failures are news.
  const words = compactStatus(course);
  setHidden(summary, showProgress && words.kind !== "error");
  setAttr(summary, "data-kind", words.kind);
  setText(summary.firstElementChild, `, ${words.spoken}`);
  setText(summary.lastElementChild, words.shown);
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

/**
 * How many of a course's lessons are ready and failed, of how many: from its lessons
 * when they are loaded, else from its job's counters (which follow every lesson's status,
 * live from the stream), else from the list's `lesson_statuses`.
 */
export function lessonCounts(course) {
  if (course.lessons) {
    const count = (status) => course.lessons.filter((l) => l.content_status === status).length;
    return { ready: count("complete"), failed: count("error"), total: course.lessons.length };
  }
  const job = course.job;
  if (job) {
    return { ready: job.completed_lessons, failed: job.failed_lessons, total: job.total_lessons };
  }
  const statuses = course.statuses ?? {};
  const ready = statuses.complete ?? 0;
  const failed = statuses.error ?? 0;
  return { ready, failed, total: course.lesson_count ?? 0 };
}

/** {shown: "3/8 written", spoken: "3 of 8 lessons written", kind} for a course. */
export function compactStatus(course) {
  const { ready, failed, total } = lessonCounts(course);
  const running = course.job?.status === "running";
  const lessons = total === 1 ? "lesson" : "lessons";
  if (total === 0) return { shown: "no lessons", spoken: "no lessons", kind: "empty" };
  if (failed && !running) {
    const errors = failed === 1 ? "1 error" : `${failed} errors`;
    return { shown: errors, spoken: `${failed} of ${total} ${lessons} failed`, kind: "error" };
  }
  if (ready === total) {
    const spoken = `all ${total} ${lessons} ready`;
    return { shown: `${ready}/${total}`, spoken, kind: "complete" };
  }
  const failing = failed ? ` · ${failed === 1 ? "1 error" : `${failed} errors`}` : "";
  return {
    shown: `${ready}/${total} written${failing}`,
    spoken: `${ready} of ${total} ${lessons} written${failed ? `, ${failed} failed` : ""}`,
    kind: failed ? "error" : running ? "running" : "partial",
  };
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
  // Worked out again only when the usage (a new object on each change) or the words
  // differ: with a thousand courses in the tree, every render would format every bill.
  const last = tag.bill;
  if (last && last.usage === usage && last.demo === options.demo && last.soFar === soFar) {
    return last.hover;
  }
  const shown = spent(usage);
  setHidden(tag, !shown);
  let hover = null;
  if (shown) {
    setText(tag.firstElementChild, soFar ? ", cost so far " : ", cost ");
    setText(tag.lastElementChild, money(usage.cost_usd, options));
    hover = breakdown(usage, options, soFar ? "Cost so far" : "Cost");
  }
  tag.bill = { usage, demo: options.demo, soFar, hover };
  return hover;
}

// -- keyboard ---------------------------------------------------------------------------

function visibleItems(root) {
  return [...root.querySelectorAll('[role="treeitem"]')].filter(
    (item) => !item.closest('[role="group"][hidden]'),
  );
}

/** Exactly one item is reachable with Tab: the last focused, else the current page's. */
function rovingTabindex(root) {
  // Looked up, not searched for among every item: the tree may hold a thousand.
  const key = root.dataset.focusKey;
  const chosen =
    shown(key && root.querySelector(`[data-item="${CSS.escape(key)}"]`)) ??
    shown(root.querySelector('[role="treeitem"][aria-current]')) ??
    root.querySelector('[role="treeitem"]');
  for (const item of root.querySelectorAll('[role="treeitem"][tabindex="0"]')) {
    if (item !== chosen) item.setAttribute("tabindex", "-1");
  }
  if (chosen) setAttr(chosen, "tabindex", "0");
}

/** The item, unless it is in a folded course (or there is none). */
function shown(item) {
  return item && !item.closest('[role="group"][hidden]') ? item : null;
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
      else store.setExpanded(courseId, true);
      break;
    case "ArrowLeft":
      if (isCourse && expanded) store.setExpanded(courseId, false);
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
  const courseEl = twisty.closest(".tree-course");
  const expanded = courseEl.firstElementChild.getAttribute("aria-expanded") === "true";
  store.setExpanded(Number(courseEl.dataset.courseId), !expanded);
}
