// The JSON API (the README's API table; the server describes it at api/openapi.json).
// Every failure becomes an ApiError whose message is the server's own words
// ({"error": "..."}), ready to be shown to a person.
//
// A server with an API token answers 401 to a page that has not signed in (or whose
// session has ended): whichever request meets it first tells the page, through the
// handler given to onSignedOut, before the caller sees its ApiError.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the server could not be reached
  }
}

let signedOut = () => {};

/** Call `handler` whenever a request is refused for want of the API token. */
export function onSignedOut(handler) {
  signedOut = handler;
}

async function request(method, path, { body, headers, signingIn = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    // Relative to the page, so a proxy may serve coursegen under a path prefix.
    response = await fetch(`api/${path}`, init);
  } catch {
    throw new ApiError(
      0,
      "Could not reach the server. Check that coursegen is running, then try again.",
    );
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status line below still says something.
  }
  if (!response.ok) {
    const message =
      typeof data?.error === "string"
        ? data.error
        : `The server answered ${response.status} ${response.statusText}.`;
    // At sign-in a 401 is only a wrong token; anywhere else the page must sign in.
    if (response.status === 401 && !signingIn) signedOut();
    throw new ApiError(response.status, message);
  }
  return data;
}

/** A key that makes a repeated submit (double click, retried request) start nothing new. */
function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a LAN address over plain http is not one.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

export const api = {
  health: () => request("GET", "health"),
  // One page of courses, newest first: {courses, next, last_event_id}. `before` is the
  // `next` of the page before (opaque); `q`, words the courses' texts must hold.
  listCourses: ({ limit, before, q } = {}) => {
    const params = new URLSearchParams();
    if (limit !== undefined) params.set("limit", String(limit));
    if (before) params.set("before", before);
    if (q) params.set("q", q);
    const query = params.toString();
    return request("GET", query ? `courses?${query}` : "courses");
  },
  getCourse: (id) => request("GET", `courses/${id}`),
  getLesson: (id) => request("GET", `lessons/${id}`),
  // `mode`: "stream" (written now, word by word) or "batch" (one Message Batch, half price);
  // `options`: {level, language, instructions, quizzes}, how the course is to be written.
  generate: (topic, lessons, mode = "stream", options = {}) =>
    request("POST", "courses/generate", {
      body: { topic, ...(lessons === null ? {} : { lessons }), mode, ...options },
      headers: { "Idempotency-Key": idempotencyKey() },
    }),
  // `instructions` (optional) apply to this one regeneration, with the course's own.
  retryLesson: (id, instructions = "") =>
    request("POST", `lessons/${id}/retry`, instructions ? { body: { instructions } } : {}),
  // Write this queued lesson next: a person is waiting to read it.
  prioritizeLesson: (id) => request("POST", `lessons/${id}/prioritize`),
  retryJob: (jobId) => request("POST", `jobs/${jobId}/retry`),
  cancelJob: (jobId) => request("POST", `jobs/${jobId}/cancel`),
  deleteCourse: (id) => request("DELETE", `courses/${id}`),
  // The author's edits.
  // `changes`: any of {title, description, content (Markdown), position}.
  editLesson: (id, changes) => request("PATCH", `lessons/${id}`, { body: changes }),
  addLesson: (courseId, lesson) => request("POST", `courses/${courseId}/lessons`, { body: lesson }),
  removeLesson: (id) => request("DELETE", `lessons/${id}`),
  versions: (id) => request("GET", `lessons/${id}/versions`),
  version: (id, n) => request("GET", `lessons/${id}/versions/${n}`),
  restoreVersion: (id, n) => request("POST", `lessons/${id}/versions/${n}/restore`),
  retryQuiz: (id) => request("POST", `lessons/${id}/quiz/retry`),
  // The session cookie is HttpOnly: the page never sees it, the browser sends it.
  signIn: (token) => request("POST", "session", { body: { token }, signingIn: true }),
  signOut: () => request("DELETE", "session"),
};
