// Which courses the tree lists: the library a page at a time, newest first, as the person
// scrolls, or the courses whose texts hold the words in the search field.
//
// Answers may come back in any order: only the newest search's answer is shown, and a
// page goes only to the list it was asked for.

import { api, ApiError } from "./api.js";
import * as store from "./store.js";

export const PAGE_SIZE = 50;
// A course made while a search shows: its newest matches are asked for again, once for a
// burst of new courses.
const CATCH_UP_MS = 250;

export class Library {
  constructor(live) {
    this.live = live; // stopped on sign-out: answers still on their way are dropped
    this.searches = 0; // numbers the searches: an older answer never replaces a newer one
    this.catchUpTimer = null;
  }

  stop() {
    clearTimeout(this.catchUpTimer);
  }

  /** Show the courses matching `text`; no words shows the whole library again, at once. */
  async search(text) {
    const q = text.trim();
    const { search, pendingQuery } = store.state;
    if (q === (pendingQuery ?? search?.q ?? "")) return; // shown already, or on its way
    const number = ++this.searches;
    if (!q) {
      store.clearSearch();
      return;
    }
    if (q === search?.q) {
      store.searching(null); // back to the words on show: the answer on its way is dropped
      return;
    }
    store.searching(q);
    const ticket = store.ticket();
    let page;
    try {
      page = await api.listCourses({ q, limit: PAGE_SIZE });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (number === this.searches && !this.live.stopped) store.searchFailed(q, error.message);
      return;
    }
    if (number !== this.searches || this.live.stopped) return; // a newer search replaced it
    store.showSearch(q, page, ticket);
  }

  /** The next page of the list on show, unless it has none or one is on its way. */
  async more() {
    const list = store.shownList();
    if (this.live.stopped || !list.ready || !list.next || list.loadingMore) return;
    store.setPaging(list, { loading: true });
    const ticket = store.ticket();
    try {
      const page = await api.listCourses({
        q: list.q || undefined,
        before: list.next,
        limit: PAGE_SIZE,
      });
      if (this.live.stopped) return;
      // Into its own list, shown or not: the library keeps what was paged under a search.
      store.applyPage(list, page, ticket);
      store.setPaging(list, { loading: false });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (!this.live.stopped) store.setPaging(list, { loading: false, error: error.message });
    }
  }

  /** A course was made: the library has it already; a search may match it. */
  courseCreated() {
    if (!store.state.search && store.state.pendingQuery === null) return;
    clearTimeout(this.catchUpTimer);
    this.catchUpTimer = setTimeout(() => this.catchUp(), CATCH_UP_MS);
  }

  async catchUp() {
    const list = store.state.search;
    if (!list || this.live.stopped) return;
    const ticket = store.ticket();
    try {
      const page = await api.listCourses({ q: list.q, limit: PAGE_SIZE });
      if (this.live.stopped || store.state.search !== list) return;
      store.applyPage(list, page, ticket, { top: true, catchUp: true });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      // Left as it is: the next course made, or the next search, asks again.
    }
  }
}
