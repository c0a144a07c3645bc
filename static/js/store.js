// The page's one source of truth. Views render from `state` and nothing else; API
// answers and live events change it only through the functions below.
//
// Every change is "set to", never "advance by", so applying the same news twice is
// harmless: the event stream, the generate answer and polling may all report one
// change, in any order.

const RECENT_EVENTS = 2000;
const SUCCESS_NOTICE_MS = 10_000;

export const state = {
  loaded: false, // the first page of the library has arrived
  health: null,
  cursor: 0, // the newest event id seen: where a (re)opened stream resumes
  // id -> course, with `lessons` (null until loaded: only for courses shown expanded) and
  // `job`. Every course the page has heard of, whichever list it came in.
  courses: new Map(),
  // The library: every course, newest first, as far as the person has scrolled (see
  // newList). The tree shows it, or `search` while the search field holds words.
  library: newList(""),
  search: null, // the list of courses matching the words searched for, once answered
  pendingQuery: null, // words searched for whose answer has not come yet
  searchError: null, // {q, message}: why the last search failed
  // lesson id -> {html, about, version}: one run of the lesson as GET api/lessons/{id} told
  // it: its sanitised HTML (complete) and how it was made (complete or failed).
  content: new Map(),
  // lesson id -> {questions, error, version}: the lesson's quiz as GET api/lessons/{id} told
  // it, fetched while its quiz status was at `version` (see setQuizStatus).
  quizzes: new Map(),
  // The lesson on show as it is being written (writing.js): {lessonId, text (Markdown so
  // far), status (as its own stream last said), startingNext, about}, or null.
  draft: null,
  // What the newest generate said its lessons may cost at most: {courseId, maxCostUsd},
  // until dismissed or replaced by the next generate's.
  estimate: null,
  live: { mode: "connecting" }, // stream, reconnecting, polling or offline
  route: { name: "home" },
  form: { busy: false }, // and `error`, `field`, `message` once there is something to say
  notices: [],
  collapsed: new Set(), // course ids folded in the tree by hand
  unfolded: new Set(), // course ids unfolded in the tree by hand
  busy: new Set(), // actions waiting for the server, e.g. "cancel:12"
  confirmDelete: null, // the course id whose deletion awaits a second click
  // "open": no token asked for (yet); "signed-in" to a server that needs one; "signed-out":
  // the server refused the page until it signs in. With `busy` and `error` of the sign-in.
  auth: { mode: "open", busy: false, error: null },
};

// Recent events, so that a snapshot which may predate some of them can be brought up to
// date by applying them again (see applyCourse).
const recent = [];
// Ids of deleted courses: an answer asked for before a deletion must not bring it back.
const deleted = new Set();
const finishes = new Map(); // job id -> completed_at of its newest finish seen
const made = new Set(); // ids of courses made while the page looked on, not yet fetched
let sequence = 0;
let noticeIds = 0;

const listeners = new Set();
let scheduled = false;

export function subscribe(listener) {
  listeners.add(listener);
}

/** Ask for one render after the current task, however many changes it makes. */
export function changed() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    for (const listener of listeners) listener(state);
  });
}

/**
 * Taken just before asking the server for a snapshot: what the page had seen by then.
 * `since` is the newest event applied; `seq` orders the request among local changes.
 */
export function ticket() {
  return { since: state.cursor, seq: ++sequence };
}

/**
 * A list of courses as the tree shows it: the ids of the pages that came so far, newest
 * first, and `next`, the cursor of the page after them (null: there is none).
 */
function newList(q) {
  return { q, ids: new Set(), next: null, ready: false, loadingMore: false, error: null };
}

/** The list the tree shows: the search's results, or the whole library. */
export function shownList() {
  return state.search ?? state.library;
}

/**
 * The courses of the tree, newest first. The open course is there too while the whole
 * library shows, even if the pages have not reached it (an address opened directly).
 */
export function treeCourses() {
  const list = shownList();
  const ids = new Set(list.ids);
  if (list === state.library && state.route.courseId !== undefined) ids.add(state.route.courseId);
  const courses = [];
  for (const id of ids) {
    const course = state.courses.get(id);
    if (course) courses.push(course);
  }
  return courses.sort((a, b) => b.id - a.id);
}

/**
 * Whether the tree shows a course's lessons: the open course, and one being written while
 * the page looks on, unless folded by hand; any course unfolded by hand.
 */
export function isExpanded(course) {
  if (state.collapsed.has(course.id)) return false;
  return state.unfolded.has(course.id) || course.watched || state.route.courseId === course.id;
}

/** A course deleted (here, elsewhere, or found missing): it never comes back. */
export function isGone(courseId) {
  return deleted.has(courseId);
}

export function findLesson(course, lessonId) {
  return course?.lessons?.find((lesson) => lesson.id === lessonId) ?? null;
}

/**
 * The lesson's HTML if it belongs to the run now shown (a regenerate makes it stale).
 * With `edited`, also the HTML from before a hand edit, while the edited one is fetched:
 * the text stays in place rather than blink out for a moment.
 */
export function contentOf(lesson, { edited = false } = {}) {
  const loaded = loadedOf(lesson);
  if (loaded) return loaded.html;
  const stored = state.content.get(lesson.id);
  return edited && stored?.edited ? stored.html : null;
}

/** The lesson's quiz as last fetched for its current quiz status, or null. */
export function quizOf(lesson) {
  const stored = state.quizzes.get(lesson.id);
  return stored && stored.version === lesson.quizVersion ? stored : null;
}

/** How a lesson was made, from GET api/lessons/{id} or a lesson stream's snapshot. */
export function aboutOf(lesson) {
  return {
    model: lesson.model ?? null,
    attempts: lesson.attempts ?? 0,
    durationMs: lesson.duration_ms ?? null,
    stopReason: lesson.stop_reason ?? null,
  };
}

/** What was fetched of the lesson's current run ({html, about}), or null. */
export function loadedOf(lesson) {
  const stored = state.content.get(lesson.id);
  return stored && stored.version === lesson.version ? stored : null;
}

// -- news from the server ---------------------------------------------------------------

/** An event from the stream; returns false for one already applied (a resumed stream). */
export function applyEvent(id, type, data) {
  if (id <= state.cursor) return false;
  state.cursor = id;
  recent.push({ id, type, data });
  if (recent.length > RECENT_EVENTS) recent.splice(0, recent.length - RECENT_EVENTS);
  apply(type, data);
  changed();
  return true;
}

function apply(type, data) {
  if (type === "course") {
    if (data.action === "deleted") removeCourse(data.course_id);
    // The newest of the library; the live module fetches it (and asks a search again).
    else if (data.action === "created") addToLibrary(data.course_id);
    return;
  }
  const course = state.courses.get(data.course_id);
  if (!course) return; // its snapshot, when it comes, replays this event
  if (type === "lesson") {
    if (data.change === "removed") {
      dropLesson(course, data.lesson_id);
      return;
    }
    let lesson = findLesson(course, data.lesson_id);
    if (!lesson && data.change === "added" && course.lessons) {
      lesson = newLesson(data.lesson_id);
      lesson.description = ""; // not in the event: the course's snapshot brings it
      course.lessons.push(lesson);
      course.lesson_count = course.lessons.length;
    }
    if (lesson) {
      setLessonStatus(lesson, data.content_status, data.content_error);
      // Only the event that ends a call carries the lesson's new total.
      if (data.usage) lesson.usage = data.usage;
      if (data.title !== undefined) lesson.title = data.title;
      if (data.position !== undefined && lesson.position !== data.position) {
        lesson.position = data.position;
        sortLessons(course);
      }
      // A hand edit may have changed the text without changing the status.
      if (data.change === "edited") touchContent(lesson);
    }
  } else if (type === "quiz") {
    const lesson = findLesson(course, data.lesson_id);
    if (lesson) {
      setQuizStatus(lesson, data.quiz_status, data.quiz_error);
      if (data.usage) lesson.usage = data.usage;
    }
  } else if (type === "progress" || type === "job") {
    setJob(course, data);
  }
}

/**
 * A page of `GET /api/courses` for `list` (the library or a search), asked for at
 * `ticket`. `top`: the page was asked for from the newest course on (no `before`).
 * `catchUp`: the newest page once more, to catch up (polling, a new course while
 * searching): the paging further down stays as it was. `advance`: no stream is open, so
 * the page's `last_event_id` is what the page has seen.
 *
 * As for a course's snapshot, events that arrived while the page was on its way are
 * applied again on top of its courses.
 */
export function applyPage(list, page, { since, seq }, options = {}) {
  const { top = false, catchUp = false, advance = false } = options;
  const listed = new Set();
  for (const summary of page.courses) {
    listed.add(summary.id);
    if (deleted.has(summary.id)) continue; // deleted since we asked
    const course = upsertCourse(summary);
    course.lesson_count = summary.lesson_count;
    course.statuses = summary.lesson_statuses ?? null;
    setJob(course, summary.job);
    list.ids.add(summary.id);
  }
  replay(since, listed);
  // The newest page of the library holds every course from its oldest one up: a course
  // the page knew of in that range and not listed has been deleted (seen when polling).
  // One that appeared after we asked (our own generate) is not missing.
  if (list === state.library && top) {
    const floor = page.next === null ? -Infinity : Math.min(...listed);
    for (const course of [...state.courses.values()]) {
      if (course.id >= floor && !listed.has(course.id) && course.addedSeq < seq) {
        removeCourse(course.id);
      }
    }
  }
  if (!catchUp) list.next = page.next;
  list.ready = true;
  list.error = null;
  if (advance) state.cursor = Math.max(state.cursor, page.last_event_id);
  changed();
}

/**
 * A course made while the page looks on (here or elsewhere), heard of outside the
 * library's pages: at its top, and followed like one seen being written.
 */
export function addToLibrary(courseId) {
  if (deleted.has(courseId)) return;
  state.library.ids.add(courseId);
  const course = state.courses.get(courseId);
  if (course) course.watched = true;
  else made.add(courseId);
  changed();
}

/**
 * Of the courses being written when the page opens, the newest is followed as if seen
 * starting: its lessons show, being written. One only: its lessons cost a request.
 */
export function watchNewest(page) {
  const running = page.courses.find((summary) => summary.job?.status === "running");
  const course = running && state.courses.get(running.id);
  if (course) course.watched = true;
  changed();
}

/** The words searched for, while their answer is on its way. */
export function searching(q) {
  state.pendingQuery = q;
  state.searchError = null;
  changed();
}

/** The first page of courses matching `q`: the tree shows them now. */
export function showSearch(q, page, ticket) {
  const list = newList(q);
  applyPage(list, page, ticket, { top: true });
  state.search = list;
  state.pendingQuery = null;
  changed();
}

export function searchFailed(q, message) {
  state.pendingQuery = null;
  state.searchError = { q, message };
  changed();
}

/** The search field emptied: the whole library again, as it was. */
export function clearSearch() {
  state.search = null;
  state.pendingQuery = null;
  state.searchError = null;
  changed();
}

/** A list's next page is on its way (`loading`), or failed (`error`, a message). */
export function setPaging(list, { loading, error = null }) {
  list.loadingMore = loading;
  list.error = error;
  changed();
}

function replay(since, courseIds) {
  for (const event of recent) {
    if (event.id > since && courseIds.has(event.data.course_id)) apply(event.type, event.data);
  }
}

/**
 * A course with its lessons (`GET /api/courses/{id}` or the generate answer).
 *
 * The snapshot may be older than events that arrived while it was on its way, so the
 * events received since the ticket are applied again on top of it: per lesson, the last
 * event received wins, and any newer one is still to come from the stream.
 */
export function applyCourse(detail, { since }) {
  if (deleted.has(detail.id)) return;
  const course = upsertCourse(detail);
  // What the lessons were fetched with: polling fetches them again once the job differs.
  course.lessonsJob = JSON.stringify(detail.job ?? null);
  const previous = new Map((course.lessons ?? []).map((lesson) => [lesson.id, lesson]));
  course.lessons = detail.lessons.map((data) => {
    const lesson = previous.get(data.id) ?? newLesson(data.id);
    lesson.position = data.position;
    lesson.title = data.title;
    lesson.description = data.description;
    setLessonStatus(lesson, data.content_status, data.content_error);
    // A summary has the quiz's status, not its error: that comes with the lesson.
    setQuizStatus(lesson, data.quiz_status ?? "none", lesson.quiz_error);
    lesson.usage = data.usage ?? null;
    return lesson;
  });
  for (const id of previous.keys()) {
    if (!findLesson(course, id)) forgetLesson(id);
  }
  course.lesson_count = course.lessons.length;
  setJob(course, detail.job);
  replay(since, new Set([detail.id]));
  changed();
}

/**
 * A whole lesson (`GET` or the answer to an edit or a restore): its place and words, its
 * status, and its text and quiz as of this answer. An edit's own events may come before
 * or after it; either way the newest text is fetched or kept.
 */
export function applyLesson(data) {
  const course = state.courses.get(data.course_id);
  const lesson = findLesson(course, data.id);
  if (!lesson) return;
  lesson.title = data.title;
  lesson.description = data.description;
  if (lesson.position !== data.position) {
    lesson.position = data.position;
    sortLessons(course);
  }
  setLessonStatus(lesson, data.content_status, data.content_error);
  setQuizStatus(lesson, data.quiz_status, data.quiz_error);
  if (data.usage) lesson.usage = data.usage;
  touchContent(lesson);
  if (data.content_status === "complete" || data.content_status === "error") {
    const html = data.content_status === "complete" ? data.content_html : null;
    setContent(lesson.id, html, aboutOf(data), lesson.version);
  }
  setQuiz(lesson.id, data, lesson.quizVersion);
  changed();
}

/** Move a lesson to `position` (1..n) as the server does: the ones between shift by one. */
export function moveLesson(courseId, lessonId, position) {
  const course = state.courses.get(courseId);
  const lesson = findLesson(course, lessonId);
  if (!lesson) return;
  const others = course.lessons.filter((other) => other !== lesson);
  others.splice(position - 1, 0, lesson);
  others.forEach((other, index) => {
    other.position = index + 1;
  });
  course.lessons = others;
  changed();
}

/** A lesson removed here: gone at once, before its event. */
export function removeLesson(courseId, lessonId) {
  const course = state.courses.get(courseId);
  if (course) dropLesson(course, lessonId);
  changed();
}

/** The quiz of a lesson's answer (GET api/lessons/{id}), fetched at quiz status `version`. */
export function setQuiz(lessonId, data, version) {
  state.quizzes.set(lessonId, {
    questions: data.quiz ?? null,
    error: data.quiz_error ?? null,
    version,
  });
  changed();
}

/** A lesson's sanitised HTML (null unless complete) and how it was made, fetched while
 * the lesson was at `version`. */
export function setContent(lessonId, html, about, version) {
  state.content.set(lessonId, { html, about, version });
  changed();
}

/** The estimate of a generate's answer; null hides it. */
export function setEstimate(estimate) {
  state.estimate = estimate;
  changed();
}

/** The text so far of the lesson being written on the page (null: none followed). */
export function setDraft(draft) {
  state.draft = draft;
  changed();
}

export function removeCourse(courseId) {
  const course = state.courses.get(courseId);
  deleted.add(courseId);
  state.library.ids.delete(courseId);
  state.search?.ids.delete(courseId);
  state.unfolded.delete(courseId);
  state.collapsed.delete(courseId);
  changed(); // a page waiting for it says it is not there
  if (!course) return;
  for (const lesson of course.lessons ?? []) forgetLesson(lesson.id);
  state.courses.delete(courseId);
  state.notices = state.notices.filter((notice) => notice.courseId !== courseId);
  if (state.confirmDelete === courseId) state.confirmDelete = null;
  if (state.estimate?.courseId === courseId) state.estimate = null;
}

function upsertCourse(data) {
  let course = state.courses.get(data.id);
  if (!course) {
    course = {
      id: data.id,
      lessons: null,
      job: null,
      statuses: null, // the list's lesson_statuses, until the lessons or the job say more
      watched: made.delete(data.id),
      addedSeq: ++sequence,
    };
    state.courses.set(data.id, course);
  }
  course.topic = data.topic;
  course.title = data.title;
  course.description = data.description;
  course.created_at = data.created_at;
  course.mode = data.mode ?? "stream";
  // How it was asked to be written (the README, "Authoring").
  course.level = data.level ?? "beginner";
  course.language = data.language ?? "English";
  course.instructions = data.instructions ?? "";
  course.quizzes = data.quizzes ?? true;
  course.usage = data.usage ?? null; // outline and every lesson call, all jobs
  return course;
}

function newLesson(id) {
  return {
    id,
    version: 0, // bumped whenever its text changes: a new run, or an edit
    content_status: null,
    quiz_status: "none",
    quiz_error: null,
    quizVersion: 0, // bumped whenever its quiz status changes
    usage: null,
  };
}

function sortLessons(course) {
  course.lessons?.sort((a, b) => a.position - b.position || a.id - b.id);
}

function dropLesson(course, lessonId) {
  if (!course.lessons) return;
  course.lessons = course.lessons.filter((lesson) => lesson.id !== lessonId);
  course.lesson_count = course.lessons.length;
  forgetLesson(lessonId);
}

function forgetLesson(lessonId) {
  state.content.delete(lessonId);
  state.quizzes.delete(lessonId);
}

/** The text changed by hand: fetch it again, and show the old one until it comes. */
function touchContent(lesson) {
  lesson.version += 1;
  const stored = state.content.get(lesson.id);
  if (stored) stored.edited = true;
}

function setQuizStatus(lesson, status, error) {
  if (lesson.quiz_status !== status) {
    lesson.quiz_status = status;
    lesson.quizVersion += 1; // a quiz fetched for the previous status is stale
    state.quizzes.delete(lesson.id);
  }
  lesson.quiz_error = error ?? null;
}

function setLessonStatus(lesson, status, error) {
  if (lesson.content_status !== status) {
    lesson.content_status = status;
    lesson.version += 1; // any content fetched for the previous run is now stale
    state.content.delete(lesson.id);
  }
  lesson.content_error = error ?? null;
}

function setJob(course, job) {
  const before = course.job;
  course.job = job ?? null;
  if (!job) return;
  // The course's running total, as of this news of its job.
  if (job.usage) course.usage = job.usage;
  if (job.status === "running") {
    // Seen starting while the page looks on (a retry, a resume): the tree shows it being
    // written, and its progress until the page reloads. Not every course that was already
    // running when the page opened (economy courses run for hours): see watchNewest.
    if (before && before.status !== "running") course.watched = true;
    return;
  }
  // Each run of a job finishes once, at its completed_at. Replays, stale snapshots and
  // polling may show a finish again, or an older one: only a newer one is news.
  const last = finishes.get(job.job_id);
  if (!job.completed_at || (last !== undefined && last >= job.completed_at)) return;
  finishes.set(job.job_id, job.completed_at);
  // Announced only if the page saw the job before this finish, not if it was long over.
  // (Polling may miss the running in between a retry and its quick end, hence the times.)
  if (
    before?.job_id === job.job_id &&
    (before.status === "running" || before.completed_at !== job.completed_at)
  ) {
    announceFinish(course, job);
  }
}

function announceFinish(course, job) {
  dismissCourseNotices(course.id); // the newest finish of a course replaces older news of it
  const total = job.total_lessons;
  if (job.status === "complete") {
    const text = total === 1 ? "The lesson is ready" : `All ${total} lessons ready`;
    notify({ kind: "success", courseId: course.id, title: course.title, text });
  } else if (job.status === "error") {
    const failed = job.failed_lessons;
    const text = failed
      ? `Finished with ${failed} ${failed === 1 ? "error" : "errors"}`
      : job.error_message || "Stopped with an error";
    notify({ kind: "error", courseId: course.id, title: course.title, text, action: "retry-job" });
  }
}

// -- page state -------------------------------------------------------------------------

/** A non-blocking message; success notices go away by themselves, errors stay. */
export function notify({ kind = "info", courseId = null, title = "", text, action = null }) {
  const notice = { id: ++noticeIds, kind, courseId, title, text, action };
  state.notices = [...state.notices, notice].slice(-5);
  if (kind !== "error") setTimeout(() => dismiss(notice.id), SUCCESS_NOTICE_MS);
  changed();
  return notice;
}

export function dismiss(noticeId) {
  const before = state.notices.length;
  state.notices = state.notices.filter((notice) => notice.id !== noticeId);
  if (state.notices.length !== before) changed();
}

/** Drop a course's notices, e.g. its "finished with errors" once its retry is asked for. */
export function dismissCourseNotices(courseId) {
  const before = state.notices.length;
  state.notices = state.notices.filter((notice) => notice.courseId !== courseId);
  if (state.notices.length !== before) changed();
}

/** Forget all the server said, as on a fresh start: after signing out, nothing stays. */
export function forget() {
  Object.assign(state, {
    loaded: false,
    health: null,
    cursor: 0,
    courses: new Map(),
    library: newList(""),
    search: null,
    pendingQuery: null,
    searchError: null,
    content: new Map(),
    quizzes: new Map(),
    draft: null,
    estimate: null,
    live: { mode: "connecting" },
    form: { busy: false },
    notices: [],
    busy: new Set(),
    confirmDelete: null,
    collapsed: new Set(),
    unfolded: new Set(),
  });
  recent.length = 0;
  deleted.clear();
  made.clear();
  finishes.clear();
  changed();
}

export function setAuth(changes) {
  state.auth = { ...state.auth, ...changes };
  changed();
}

export function set(changes) {
  Object.assign(state, changes);
  changed();
}

export function setLive(changes) {
  state.live = { ...state.live, ...changes };
  changed();
}

/** Fold or unfold a course in the tree by hand. */
export function setExpanded(courseId, expanded) {
  state.collapsed.delete(courseId);
  state.unfolded.delete(courseId);
  (expanded ? state.unfolded : state.collapsed).add(courseId);
  changed();
}

export function setBusy(key, busy) {
  if (busy) state.busy.add(key);
  else state.busy.delete(key);
  changed();
}
