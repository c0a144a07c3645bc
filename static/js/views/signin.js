// The sign-in panel, shown in place of the page while the server wants its API token,
// and the header's "Sign out" while signed in to such a server.

import { setAttr, setText } from "../dom.js";
import { setHidden } from "./parts.js";

export function initSignIn(form, signOutButton, { signIn, signOut }) {
  const { token } = form.elements;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // An empty token is refused without asking the server.
    if (await signIn(token.value.trim())) form.reset();
    else {
      token.focus();
      token.select(); // ready to be typed over
    }
  });
  signOutButton.addEventListener("click", signOut);
}

/** The state's `auth` part: {mode, busy, error}; `signingOut` while the server is asked. */
export function renderSignIn(panel, form, signOutButton, auth, signingOut) {
  const { token } = form.elements;
  const button = form.querySelector("#signin-button");
  const error = form.querySelector("#signin-error");
  const shown = auth.mode === "signed-out";
  const appears = shown && panel.hidden;
  setHidden(panel, !shown);
  button.disabled = auth.busy;
  setAttr(form, "aria-busy", auth.busy ? "true" : null);
  setHidden(button.querySelector(".spinner"), !auth.busy);
  setText(button.querySelector(".button-label"), auth.busy ? "Signing in…" : "Sign in");
  setText(error, auth.error ?? "");
  setHidden(error, !auth.error);
  setAttr(token, "aria-invalid", auth.error ? "true" : null);
  // The page's content has just gone: the token is what there is to do now.
  if (appears) token.focus();

  setHidden(signOutButton, auth.mode !== "signed-in");
  signOutButton.disabled = signingOut;
}
