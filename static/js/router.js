// Addresses: every course and lesson has its own, kept in the hash, so that a reload,
// a bookmark and the back button all work with plain static files on the server.
//
//   #/                          home
//   #/courses/12                a course
//   #/courses/12/lessons/34     a lesson

const PATTERNS = [
  [/^#?\/?$/, () => ({ name: "home" })],
  [/^#\/courses\/(\d+)\/?$/, (m) => ({ name: "course", courseId: Number(m[1]) })],
  [
    /^#\/courses\/(\d+)\/lessons\/(\d+)\/?$/,
    (m) => ({ name: "lesson", courseId: Number(m[1]), lessonId: Number(m[2]) }),
  ],
];

/** The route a hash names; null for an in-page anchor such as the skip link's "#main". */
export function parse(hash) {
  if (hash.length > 1 && !hash.startsWith("#/")) return null;
  for (const [pattern, build] of PATTERNS) {
    const match = pattern.exec(hash);
    if (match) return build(match);
  }
  return { name: "missing" };
}

export function href(route) {
  switch (route.name) {
    case "course":
      return `#/courses/${route.courseId}`;
    case "lesson":
      return `#/courses/${route.courseId}/lessons/${route.lessonId}`;
    default:
      return "#/";
  }
}

export const courseHref = (courseId) => href({ name: "course", courseId });
export const lessonHref = (courseId, lessonId) => href({ name: "lesson", courseId, lessonId });

/** Call `onChange(route)` now and on every change of address (links, back, forward). */
export function start(onChange) {
  window.addEventListener("hashchange", () => {
    const route = parse(location.hash);
    if (route) onChange(route); // an anchor within the page leaves the page as it is
  });
  onChange(parse(location.hash) ?? { name: "home" });
}

/** Go somewhere; `replace` when the old address no longer exists (a deleted course). */
export function go(route, { replace = false } = {}) {
  const target = href(route);
  if (location.hash === target) return;
  if (replace) {
    history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = target;
  }
}
