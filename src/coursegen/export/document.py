"""What every export format is built from: a course read once, its lessons rendered safely."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from html import unescape

from coursegen.domain import Course, Lesson, LessonStatus, QuizQuestion
from coursegen.render import render_markdown


@dataclass(frozen=True, slots=True)
class ExportLesson:
    """One lesson in course order; `markdown` and `html` are None until it is written."""

    number: int  # 1-based, in course order
    title: str
    description: str
    markdown: str | None
    html: str | None  # the sanitised rendering of `markdown`, as the page shows it
    quiz: tuple[QuizQuestion, ...]
    # "03-loops-and-conditions": unique in the course, sortable, ASCII.
    slug: str

    @property
    def written(self) -> bool:
        return self.markdown is not None


@dataclass(frozen=True, slots=True)
class ExportCourse:
    id: int
    title: str
    topic: str
    description: str
    level: str
    language: str
    created_at: str
    lessons: tuple[ExportLesson, ...]
    slug: str  # the course title as a file name: "python-for-data-analysis"


def slugify(text: str, fallback: str, limit: int = 60) -> str:
    """Lowercase ASCII words joined by hyphens; `fallback` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or fallback


def export_document(course: Course, lessons: Sequence[Lesson]) -> ExportCourse:
    """The course as the exports see it. Only complete lessons carry their text."""
    width = max(2, len(str(len(lessons))))
    exported = []
    for number, lesson in enumerate(lessons, start=1):
        written = lesson.content_status is LessonStatus.COMPLETE and lesson.content is not None
        exported.append(
            ExportLesson(
                number=number,
                title=lesson.title,
                description=lesson.description,
                markdown=lesson.content if written else None,
                html=render_markdown(lesson.content) if written and lesson.content else None,
                quiz=lesson.quiz or () if written else (),
                slug=f"{number:0{width}d}-{slugify(lesson.title, 'lesson')}",
            )
        )
    return ExportCourse(
        id=course.id,
        title=course.title,
        topic=course.topic,
        description=course.description,
        level=course.options.level.value,
        language=course.options.language,
        created_at=course.created_at,
        lessons=tuple(exported),
        slug=slugify(course.title, f"course-{course.id}"),
    )


_FIRST_HEADING = re.compile(r"\A\s*<h([12])>(.*?)</h\1>\s*", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def lesson_body(lesson: ExportLesson) -> str:
    """The lesson's sanitised HTML, less a first heading that only repeats its title.

    Every format shows the title in its own header; the model is asked to open each lesson
    with it, so without this the title is there twice. The rest is the page's HTML as is.
    """
    text = lesson.html or ""
    first = _FIRST_HEADING.match(text)
    if first is not None and _words(unescape(_TAG.sub("", first[2]))) == _words(lesson.title):
        return text[first.end() :]
    return text


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()
