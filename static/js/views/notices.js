// Notices: non-blocking news in a corner (a course finished, an action failed), never
// alert(). The container is a polite live region, so each new notice is read out.

import { h, syncKeyed } from "../dom.js";
import { courseHref } from "../router.js";

export function renderNotices(root, notices, { onAction, onDismiss }) {
  syncKeyed(
    root,
    notices,
    (notice) => notice.id,
    (notice) => buildNotice(notice, onAction, onDismiss),
    () => {},
  );
}

function buildNotice(notice, onAction, onDismiss) {
  const title =
    notice.courseId !== null ? h("a", { href: courseHref(notice.courseId) }, notice.title) : null;
  const text = h("p", { class: "notice-text" }, title, title ? ": " : null, notice.text);
  const action =
    notice.action === "retry-job"
      ? h(
          "button",
          { type: "button", class: "button small", onclick: () => onAction(notice) },
          "Retry",
        )
      : null;
  const dismiss = h(
    "button",
    {
      type: "button",
      class: "notice-dismiss",
      "aria-label": "Dismiss",
      onclick: () => onDismiss(notice),
    },
    "×",
  );
  return h("div", { class: "notice", dataset: { kind: notice.kind } }, text, action, dismiss);
}
