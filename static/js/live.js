// Live updates. One EventSource on /api/events serves the whole page (browsers allow
// about six connections per origin), resumed from the newest event the page has seen.
// Without EventSource, or when the stream keeps failing, the page polls the JSON
// endpoints instead and says so; it tries the stream again now and then.
//
// One Live follows the server for one signed-in run of the page. When the server asks
// for its API token (a 401, reported by the api module), the page stops it for good:
// no stream, no polling and no retries knock on a locked door; signing in starts anew.

import { api, ApiError } from "./api.js";
import { Library, PAGE_SIZE } from "./library.js";
import * as store from "./store.js";

const EVENT_TYPES = ["course", "lesson", "quiz", "progress", "job"];
const FINISHED_QUIZ = new Set(["complete", "error"]);
const FAILURES_BEFORE_POLLING = 3;
// A stream that stayed open this long was working: its next failure starts a new count.
const HEALTHY_STREAM_MS = 10_000;
const REOPEN_DELAYS_MS = [500, 1000, 2000];
const STREAM_RETRY_WHILE_POLLING_MS = 30_000;
const RELOAD_AFTER_FAILURE_MS = 3000;
// Course snapshots fetched at once: room is left for the stream and the person's clicks.
const PARALLEL_FETCHES = 4;
// Courses a poll brings up to date: the first pages of the library, up to this many.
const MAX_POLLED = 200;

export class Live {
  constructor({ pollInterval }) {
    this.pollInterval = pollInterval;
    this.source = null;
    this.failures = 0;
    this.openedAt = 0;
    this.streamTimer = null;
    this.polling = false;
    this.pollTimer = null;
    this.pollRunning = false;
    this.pollAgain = false;
    this.loading = new Map(); // course id -> promise of its snapshot
    this.reloading = new Map(); // course id -> promise of a snapshot asked for after that one
    this.contentAsked = new Map(); // lesson id -> the version whose HTML was asked for
    this.quizAsked = new Map(); // lesson id -> the quiz version whose quiz was asked for
    this.wanted = new Set(); // ids of courses whose lessons were asked for to be shown
    this.library = new Library(this);
    this.stopped = false;
  }

  /** Close the stream and stop polling and every retry; answers still on their way are dropped. */
  stop() {
    this.stopped = true;
    this.library.stop();
    this.source?.close();
    this.source = null;
    clearTimeout(this.streamTimer);
    this.stopPolling();
  }

  /**
   * Load the first page of the library, then follow the changes. One request: the
   * lessons of a course are fetched only when it is shown expanded (see `want`).
   */
  async start() {
    if (this.stopped) return;
    try {
      const ticket = store.ticket();
      const page = await api.listCourses({ limit: PAGE_SIZE });
      if (this.stopped) return;
      store.applyPage(store.state.library, page, ticket, { top: true, advance: true });
      store.watchNewest(page);
      store.set({ loaded: true });
      // Events that overtake a snapshot asked for from now on are replayed on top of it.
      if (typeof window.EventSource === "function") this.openStream();
      else this.startPolling();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (this.stopped) return; // a 401: the sign-in takes over
      store.setLive({ mode: "offline" });
      setTimeout(() => this.start(), this.pollInterval);
    }
  }

  /** Fetch the lessons of a course the tree or the page shows, once. */
  want(courseId) {
    if (this.stopped || this.wanted.has(courseId) || store.isGone(courseId)) return;
    if (store.state.courses.get(courseId)?.lessons) return;
    this.wanted.add(courseId);
    this.loadCourse(courseId);
  }

  /** Catch up at once after an action, when polling; the stream needs no help. */
  nudge() {
    if (this.polling) this.schedulePoll(0);
  }

  // -- the stream -----------------------------------------------------------------------

  openStream() {
    clearTimeout(this.streamTimer);
    if (this.stopped) return;
    const source = new EventSource(`api/events?last_event_id=${store.state.cursor}`);
    this.source = source;
    source.onopen = () => {
      this.openedAt = Date.now();
      this.stopPolling();
      store.setLive({ mode: "stream" });
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, (event) => this.receive(event));
    source.onerror = () => this.streamFailed(source);
  }

  receive(event) {
    const data = JSON.parse(event.data);
    if (!store.applyEvent(Number(event.lastEventId), event.type, data)) return;
    if (event.type === "course" && data.action === "created") {
      // Made elsewhere (another tab, the API): its title and lessons, for the top of the
      // library; and a search shows it if it matches.
      if (!store.state.courses.has(data.course_id)) this.loadCourse(data.course_id);
      this.library.courseCreated();
    }
    // An added lesson's description, an edited one's, is not in its event: the course's
    // snapshot has it. A quiz call is billed to its lesson, but its event carries no
    // usage: the snapshot has the lesson's new total too. Only for lessons on show: a
    // folded course's lessons are fetched whole when it is unfolded.
    const described =
      event.type === "lesson" && (data.change === "added" || data.change === "edited");
    const quizDone = event.type === "quiz" && FINISHED_QUIZ.has(data.quiz_status) && !data.usage;
    const shown = store.state.courses.get(data.course_id)?.lessons;
    if ((described || quizDone) && shown) this.reloadCourse(data.course_id);
  }

  streamFailed(source) {
    if (source !== this.source) return;
    const wasHealthy = this.openedAt && Date.now() - this.openedAt >= HEALTHY_STREAM_MS;
    this.failures = wasHealthy ? 1 : this.failures + 1;
    this.openedAt = 0;
    if (this.failures >= FAILURES_BEFORE_POLLING) {
      source.close();
      this.source = null;
      this.startPolling();
      this.streamTimer = setTimeout(() => this.openStream(), STREAM_RETRY_WHILE_POLLING_MS);
      return;
    }
    if (!this.polling) store.setLive({ mode: "reconnecting" });
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (an error status); the browser will not retry.
      source.close();
      this.source = null;
      this.reopenStream(REOPEN_DELAYS_MS[this.failures - 1]);
    }
    // Otherwise the browser reconnects by itself, sending Last-Event-ID.
  }

  /**
   * Try the refused stream again, unless it was refused for want of the API token.
   *
   * EventSource keeps the status of a refusal to itself, so a cheap request tells: its
   * 401 signs the page out (see the api module), which stops this Live; any other answer,
   * or none, leaves the stream to be retried as for a flaky network.
   */
  async reopenStream(delay) {
    try {
      await api.health();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
    if (this.stopped) return;
    this.streamTimer = setTimeout(() => this.openStream(), delay);
  }

  // -- polling --------------------------------------------------------------------------

  startPolling() {
    if (this.stopped) return;
    store.setLive({ mode: "polling" });
    if (this.polling) return;
    this.polling = true;
    this.schedulePoll(0);
  }

  stopPolling() {
    this.polling = false;
    clearTimeout(this.pollTimer);
  }

  schedulePoll(delay) {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.poll(), delay);
  }

  async poll() {
    // One poll at a time: an older answer must never land after a newer one.
    if (this.pollRunning) {
      this.pollAgain = true;
      return;
    }
    this.pollRunning = true;
    const wasOffline = store.state.live.mode === "offline";
    try {
      await this.refresh();
      if (this.polling) store.setLive({ mode: "polling" });
      // The server is back after being unreachable: its stream most likely is too.
      if (this.polling && wasOffline && typeof window.EventSource === "function" && !this.source) {
        this.openStream();
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (this.polling) store.setLive({ mode: "offline" });
    } finally {
      this.pollRunning = false;
    }
    if (!this.polling) return;
    this.schedulePoll(this.pollAgain ? 0 : this.pollInterval);
    this.pollAgain = false;
  }

  /**
   * Bring the page up to date from the JSON endpoints alone: the newest courses of the
   * library (as many as were paged, up to MAX_POLLED), then the lessons shown expanded.
   */
  async refresh() {
    const ticket = store.ticket();
    const { library } = store.state;
    const limit = Math.min(MAX_POLLED, Math.max(PAGE_SIZE, library.ids.size));
    const page = await api.listCourses({ limit });
    if (this.stopped) return;
    // Made since the last look (another tab, the API): fetched whole, as the stream's
    // "created" would have it.
    const newest = Math.max(0, ...library.ids);
    const made = page.courses.filter(
      (summary) => summary.id > newest && !store.state.courses.has(summary.id),
    );
    if (library.ready) for (const summary of made) store.addToLibrary(summary.id);
    store.applyPage(library, page, ticket, { top: true, catchUp: library.ready, advance: true });
    const summaries = new Map(page.courses.map((summary) => [summary.id, summary]));
    const expanded = [...store.state.courses.values()].filter(
      (course) => store.isExpanded(course) && this.needsLessons(course, summaries.get(course.id)),
    );
    const ids = new Set([...made.map((summary) => summary.id), ...expanded.map((c) => c.id)]);
    await this.loadCourses([...ids]);
  }

  /** Whether a poll fetches an expanded course's lessons again. */
  needsLessons(course, summary) {
    // The course on show: its lessons may have been renamed or moved, which the list's
    // counters do not tell. One beyond the polled pages: the list says nothing of it.
    if (store.state.route.courseId === course.id || !summary) return true;
    if (!course.lessons || course.lessons.length !== summary.lesson_count) return true;
    // While a job runs, lessons change without the counters changing (pending -> generating).
    if (summary.job?.status === "running") return true;
    return course.lessonsJob !== JSON.stringify(summary.job ?? null);
  }

  // -- snapshots ------------------------------------------------------------------------

  async loadCourses(ids) {
    const queue = [...ids];
    const worker = async () => {
      while (queue.length && !this.stopped) await this.loadCourse(queue.shift());
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_FETCHES, queue.length) }, worker));
  }

  loadCourse(id) {
    if (this.stopped) return Promise.resolve();
    const pending = this.loading.get(id);
    if (pending) return pending;
    const ticket = store.ticket();
    const promise = api
      .getCourse(id)
      .then((course) => {
        if (!this.stopped) store.applyCourse(course, ticket);
      })
      .catch((error) => {
        if (!(error instanceof ApiError)) throw error;
        if (this.stopped) return;
        if (error.status === 404) store.removeCourse(id);
        else if (!this.polling) setTimeout(() => this.loadCourse(id), RELOAD_AFTER_FAILURE_MS);
        // (while polling, the next poll asks again)
      })
      .finally(() => this.loading.delete(id));
    this.loading.set(id, promise);
    return promise;
  }

  /**
   * The course's snapshot once more, after any on its way: that one may have been asked
   * for before the change that calls for this one.
   */
  reloadCourse(id) {
    if (this.stopped) return Promise.resolve();
    const pending = this.loading.get(id);
    if (!pending) return this.loadCourse(id);
    let again = this.reloading.get(id);
    if (!again) {
      again = pending.then(() => {
        this.reloading.delete(id);
        return this.loadCourse(id);
      });
      this.reloading.set(id, again);
    }
    return again;
  }

  /**
   * Fetch a finished lesson (its HTML, if complete, and how it was made), once per run;
   * its quiz comes with it.
   */
  async loadContent(lesson) {
    if (this.stopped) return;
    const { version, content_status: status, quizVersion, quiz_status: quizStatus } = lesson;
    if (this.contentAsked.get(lesson.id) === version) return;
    this.contentAsked.set(lesson.id, version);
    const withQuiz = this.quizAsked.get(lesson.id) !== quizVersion;
    if (withQuiz) this.quizAsked.set(lesson.id, quizVersion);
    try {
      const full = await api.getLesson(lesson.id);
      // If it has changed since, its event (or the next poll) brings a new version.
      if (full.content_status === status && !this.stopped) {
        const html = status === "complete" ? full.content_html : null;
        store.setContent(lesson.id, html, store.aboutOf(full), version);
      }
      if (withQuiz && full.quiz_status === quizStatus && !this.stopped) {
        store.setQuiz(lesson.id, full, quizVersion);
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (this.stopped) return;
      setTimeout(() => {
        if (this.contentAsked.get(lesson.id) === version) this.contentAsked.delete(lesson.id);
        if (withQuiz && this.quizAsked.get(lesson.id) === quizVersion) {
          this.quizAsked.delete(lesson.id);
        }
        store.changed(); // the lesson page asks again
      }, RELOAD_AFTER_FAILURE_MS);
    }
  }

  /** Fetch a lesson's written (or failed) quiz, once per quiz status. */
  async loadQuiz(lesson) {
    if (this.stopped) return;
    const { quizVersion, quiz_status: quizStatus } = lesson;
    if (this.quizAsked.get(lesson.id) === quizVersion) return;
    this.quizAsked.set(lesson.id, quizVersion);
    try {
      const full = await api.getLesson(lesson.id);
      if (full.quiz_status === quizStatus && !this.stopped) {
        store.setQuiz(lesson.id, full, quizVersion);
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (this.stopped) return;
      setTimeout(() => {
        if (this.quizAsked.get(lesson.id) === quizVersion) this.quizAsked.delete(lesson.id);
        store.changed();
      }, RELOAD_AFTER_FAILURE_MS);
    }
  }
}
