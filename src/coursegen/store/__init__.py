"""The database: the one owner of the SQLite connections and of every SQL statement."""

from coursegen.store.database import EVENT_PAGE, ClaimedLesson, Store
from coursegen.store.queries import CourseOutline
from coursegen.store.transaction import progress_view, utcnow

__all__ = ["EVENT_PAGE", "ClaimedLesson", "CourseOutline", "Store", "progress_view", "utcnow"]
