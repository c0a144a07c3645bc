// The author's actions (the README, "Authoring"): regenerate with instructions, retry a
// quiz, edit a lesson by hand, change the outline, read and restore versions.
//
// Most of them answer to a view that shows its own outcome (an error next to a form, a
// status line): {ok: true, value} or {ok: false, status, message}, never a notice. The
// page's store follows each answer at once; the events confirm it, and tell other pages.

import { api, ApiError } from "./api.js";
import * as store from "./store.js";

/**
 * Ask the API for something whose outcome the asking view shows itself (a form's error,
 * say): {ok: true, value} or {ok: false, status, message}, never a notice. A change runs
 * once at a time per `busyKey` (a second ask meanwhile is {ok: false, busy: true}); a
 * read (no key) runs whenever asked, its caller keeping the newest answer.
 */
async function attempt(live, busyKey, work) {
  if (busyKey !== null) {
    if (store.state.busy.has(busyKey)) return { ok: false, busy: true, message: null };
    store.setBusy(busyKey, true);
  }
  try {
    const value = await work();
    if (busyKey !== null) live().nudge();
    return { ok: true, value };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // A 401 has already put the sign-in in place of the page: nothing to say here.
    const message = error.status === 401 ? null : error.message;
    return { ok: false, status: error.status, message };
  } finally {
    if (busyKey !== null) store.setBusy(busyKey, false);
  }
}

/** The actions, for `run` (app.js: a failure becomes a notice) and the page's `live()`. */
export function authoringActions({ run, live }) {
  return {
    /** Write a finished lesson again; `instructions` (optional) apply to this version only. */
    regenerate(courseId, lessonId, instructions) {
      return attempt(live, `lesson:${lessonId}`, () => {
        // Before asking: a quick regeneration may finish, and be announced, before its answer.
        store.dismissCourseNotices(courseId);
        return api.retryLesson(lessonId, instructions);
      });
    },

    retryQuiz(courseId, lessonId) {
      return run(`quiz:${lessonId}`, "Could not retry the quiz", () => api.retryQuiz(lessonId));
    },

    // -- edits by hand: each view shows its own errors -----------------------------------

    /** The lesson as it stands, with its Markdown: what an editor starts from. */
    readLesson(lessonId) {
      return attempt(live, null, () => api.getLesson(lessonId));
    },

    /** Change a lesson's title, description, text or place; the page shows the answer. */
    async editLesson(lessonId, changes) {
      const result = await attempt(live, `edit:${lessonId}`, () =>
        api.editLesson(lessonId, changes),
      );
      if (result.ok) store.applyLesson(result.value);
      return result;
    },

    /** Move a lesson to `position`: one change at a time per course, none overtakes another. */
    async moveLesson(courseId, lessonId, position) {
      const result = await attempt(live, `outline:${courseId}`, () =>
        api.editLesson(lessonId, { position }),
      );
      if (result.ok) {
        store.moveLesson(courseId, lessonId, result.value.position);
        live().reloadCourse(courseId);
      } else if (result.message) {
        store.notify({ kind: "error", text: `Could not move the lesson: ${result.message}` });
      }
      return result;
    },

    async addLesson(courseId, lesson) {
      const result = await attempt(live, `outline:${courseId}`, () =>
        api.addLesson(courseId, lesson),
      );
      if (result.ok) await live().reloadCourse(courseId);
      return result;
    },

    async removeLesson(courseId, lessonId) {
      const result = await attempt(live, `outline:${courseId}`, async () => {
        try {
          await api.removeLesson(lessonId);
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) throw error; // gone already
        }
      });
      if (result.ok) {
        store.removeLesson(courseId, lessonId);
        live().reloadCourse(courseId);
      }
      return result;
    },

    listVersions(lessonId) {
      return attempt(live, null, () => api.versions(lessonId));
    },

    readVersion(lessonId, number) {
      return attempt(live, null, () => api.version(lessonId, number));
    },

    async restoreVersion(lessonId, number) {
      const result = await attempt(live, `edit:${lessonId}`, () =>
        api.restoreVersion(lessonId, number),
      );
      if (result.ok) store.applyLesson(result.value);
      return result;
    },
  };
}
