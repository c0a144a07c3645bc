// The lesson on show, as it is being written (the README, "Reading a lesson as it is written").
//
// While a lesson page is open and its lesson is queued or being written, one EventSource
// on api/lessons/{id}/events brings its text: a snapshot, then chunks that each start
// where the one before ended, counted in code points. Only one lesson is followed at a
// time: the all-jobs stream (live.js) already holds one of the ~6 connections a browser
// allows per origin.
//
// The text goes to the store at most every few hundred milliseconds, not per chunk:
// chunks may come every few ms, and each publication re-renders the whole Markdown.
//
// Without EventSource, or when the lesson stream keeps failing, the lesson is polled
// instead: GET api/lessons/{id} holds the text so far while it is being written.

import { api, ApiError } from "./api.js";
import * as store from "./store.js";

const TERMINAL = new Set(["complete", "error"]);
const FAILURES_BEFORE_POLLING = 3;
const REOPEN_DELAYS_MS = [250, 1000, 2000];
// Between two renders of the growing text: longer for a longer text, which costs more
// to render (markdown-it and DOMPurify go over all of it each time).
const RENDER_EVERY_MIN_MS = 120;
const RENDER_EVERY_MAX_MS = 300;

/** Code points in `text`: how the server counts offsets (a surrogate pair is one). */
export function codePoints(text) {
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one: the pair is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i += 1;
    }
    count += 1;
  }
  return count;
}

export class Writing {
  constructor({ pollInterval }) {
    this.pollInterval = pollInterval;
    this.lessonId = null;
    this.version = 0; // the store's version of the lesson, as last seen
    // Bumped on every start, end and stop: answers and timers of an older run are dropped.
    this.run = 0;
    this.active = false; // following: a stream open (or reopening), or polling
    this.endedAt = null; // the store's version of the lesson when following it ended
    this.source = null;
    this.timer = null; // the next poll, or the stream's reopening
    this.failures = 0; // stream failures since the last snapshot
    this.gaps = 0; // chunks that did not follow on, this run
    this.publishTimer = null;
    this.frame = 0;
    this.lastPublish = 0;
    this.reset(null);
  }

  /** What is known of the lesson's text: nothing yet. */
  reset(status) {
    this.attempt = null; // the snapshot's attempt; chunks of any other are not ours
    this.text = "";
    this.length = 0; // of `text`, in code points
    this.status = status;
    this.about = null; // how it is being made (model, attempt), as its snapshot said
    this.startingNext = false; // prioritised: the next free writer takes it
    this.leftPending = status !== "pending";
  }

  /**
   * Follow `lesson`, the lesson on show (null: none), after every change of the state.
   *
   * A lesson that is complete or failed is not followed. One whose writing was seen to
   * end is followed again only once the store has news of it (a retry, a regenerate):
   * the lesson stream may tell of an end before the all-jobs stream does.
   */
  follow(lesson) {
    if (!lesson) {
      this.stop();
      return;
    }
    if (lesson.id !== this.lessonId) this.stop();
    this.version = lesson.version;
    if (this.active || TERMINAL.has(lesson.content_status)) return;
    if (this.lessonId === lesson.id && this.endedAt === lesson.version) return;
    this.start(lesson);
  }

  /** Stop following, and forget the text: the page left the lesson, or signed out. */
  stop() {
    this.halt();
    this.lessonId = null;
    this.endedAt = null;
    this.reset(null);
    if (store.state.draft !== null) store.setDraft(null);
  }

  start(lesson) {
    this.halt();
    this.lessonId = lesson.id;
    this.active = true;
    this.endedAt = null;
    this.failures = 0;
    this.gaps = 0;
    this.reset(lesson.content_status);
    this.publish();
    // A person is waiting for this one: ask for it to be written next.
    if (lesson.content_status === "pending") this.prioritize(this.run);
    if (typeof window.EventSource === "function") this.open();
    else this.startPolling();
  }

  /** The lesson is complete or failed: show the last of its text, and let go. */
  end() {
    this.halt();
    this.endedAt = this.version;
    this.publish();
  }

  /** Close the stream, stop polling and drop whatever is still on its way. */
  halt() {
    this.run += 1;
    this.active = false;
    this.source?.close();
    this.source = null;
    clearTimeout(this.timer);
    this.timer = null;
    clearTimeout(this.publishTimer);
    this.publishTimer = null;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  async prioritize(run) {
    const lessonId = this.lessonId;
    let answer;
    try {
      answer = await api.prioritizeLesson(lessonId);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return; // only a wish: the lesson is written in its turn anyway (a 401 signs out)
    }
    // 202 (still pending, now first in line) unless it has moved on meanwhile.
    if (run !== this.run || this.leftPending || answer.content_status !== "pending") return;
    this.startingNext = true;
    this.publish();
  }

  setStatus(status) {
    this.status = status;
    if (status !== "pending") {
      this.leftPending = true;
      this.startingNext = false;
    }
  }

  // -- the lesson stream ------------------------------------------------------------------

  open() {
    // Relative to the page, like every API address (see api.js).
    const source = new EventSource(`api/lessons/${this.lessonId}/events`);
    this.source = source;
    const on = (type, handle) =>
      source.addEventListener(type, (event) => {
        if (source === this.source) handle(JSON.parse(event.data));
      });
    on("snapshot", (data) => this.snapshot(data));
    on("text", (data) => this.chunk(data));
    on("lesson", (data) => this.changed(data));
    source.onerror = () => this.streamFailed(source);
  }

  /** Everything so far, at the start of each connection and of each new attempt. */
  snapshot({ lesson, attempt }) {
    this.failures = 0;
    this.attempt = attempt;
    this.about = store.aboutOf(lesson);
    this.text = lesson.content ?? "";
    this.length = codePoints(this.text);
    this.setStatus(lesson.content_status);
    if (TERMINAL.has(this.status)) this.end();
    else this.publish(); // at once: it replaces everything shown
  }

  chunk({ attempt, offset, end, text }) {
    if (attempt !== this.attempt) return; // an older attempt's, or before any snapshot
    if (offset !== this.length) {
      this.resync();
      return;
    }
    this.text += text;
    this.length += codePoints(text);
    if (this.length !== end) {
      this.resync();
      return;
    }
    this.schedulePublish();
  }

  /** A `lesson` event: the lesson's status changed. */
  changed({ lesson_id: lessonId, content_status: status }) {
    if (lessonId !== this.lessonId) return;
    this.setStatus(status);
    // Back to pending: its job was cancelled, and the text written so far is gone.
    if (status === "pending") {
      this.text = "";
      this.length = 0;
    }
    if (TERMINAL.has(status)) this.end();
    else this.publish();
  }

  /** Text went missing or came twice: start over from a fresh snapshot. */
  resync() {
    this.source?.close();
    this.source = null;
    this.gaps += 1;
    if (this.gaps >= FAILURES_BEFORE_POLLING) this.startPolling();
    else this.open(); // what is shown stays until the snapshot replaces it
  }

  streamFailed(source) {
    if (source !== this.source) return;
    this.failures += 1;
    if (this.failures >= FAILURES_BEFORE_POLLING) {
      this.startPolling();
      return;
    }
    if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    // Refused (an error status): the browser will not retry. Ask plainly first: a 401
    // signs the page out, a 404 means the lesson is gone, and the lesson may have ended.
    source.close();
    this.source = null;
    const run = this.run;
    this.timer = setTimeout(async () => {
      await this.fetchLesson(run);
      if (run === this.run) this.open();
    }, REOPEN_DELAYS_MS[this.failures - 1]);
  }

  // -- polling ----------------------------------------------------------------------------

  startPolling() {
    this.source?.close();
    this.source = null;
    this.poll(this.run);
  }

  async poll(run) {
    await this.fetchLesson(run);
    if (run === this.run) this.timer = setTimeout(() => this.poll(run), this.pollInterval);
  }

  /** The lesson as it stands, text so far included; ends following it if it has ended. */
  async fetchLesson(run) {
    let lesson;
    try {
      lesson = await api.getLesson(this.lessonId);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      // Gone: the course list will say so. Unreachable: the next poll asks again.
      if (run === this.run && error.status === 404) this.end();
      return;
    }
    if (run !== this.run) return;
    this.attempt = null; // a stream opened after this starts with its own snapshot
    this.about = store.aboutOf(lesson);
    this.text = lesson.content ?? "";
    this.length = codePoints(this.text);
    this.setStatus(lesson.content_status);
    if (TERMINAL.has(this.status)) this.end();
    else this.publish();
  }

  // -- to the page ------------------------------------------------------------------------

  /** Publish the text once the last publication is old enough, on the next frame. */
  schedulePublish() {
    if (this.publishTimer !== null || this.frame) return;
    const every = Math.min(RENDER_EVERY_MAX_MS, RENDER_EVERY_MIN_MS + this.text.length / 100);
    const wait = Math.max(0, this.lastPublish + every - performance.now());
    this.publishTimer = setTimeout(() => {
      this.publishTimer = null;
      // A hidden tab gets no frames: its text waits, unrendered, until it is seen.
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.publish();
      });
    }, wait);
  }

  publish() {
    clearTimeout(this.publishTimer);
    this.publishTimer = null;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.lastPublish = performance.now();
    store.setDraft({
      lessonId: this.lessonId,
      text: this.text,
      status: this.status,
      startingNext: this.startingNext,
      about: this.about,
    });
  }
}
