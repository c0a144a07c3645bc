"""`markdown`: a zip of README.md (the index) and one NN-slug.md per written lesson."""

from __future__ import annotations

import re

from coursegen.domain import QuizQuestion
from coursegen.export.archive import reproducible_zip
from coursegen.export.document import ExportCourse, ExportLesson

NOT_WRITTEN = "not written yet"


def build(course: ExportCourse) -> bytes:
    files: list[tuple[str, bytes | str]] = [("README.md", readme(course))]
    files += [
        (f"{lesson.slug}.md", lesson_file(lesson)) for lesson in course.lessons if lesson.written
    ]
    return reproducible_zip(files)


def readme(course: ExportCourse) -> str:
    lines = [f"# {_line(course.title)}", ""]
    if course.description:
        lines += [_line(course.description), ""]
    lines += [
        f"Topic: {_line(course.topic)} · Level: {course.level} · "
        f"Language: {_line(course.language)}",
        "",
        "## Lessons",
        "",
    ]
    for lesson in course.lessons:
        title = _line(lesson.title)
        if lesson.written:
            lines.append(f"{lesson.number}. [{_link_text(title)}]({lesson.slug}.md)")
        else:
            lines.append(f"{lesson.number}. {title} ({NOT_WRITTEN})")
    return "\n".join(lines) + "\n"


def lesson_file(lesson: ExportLesson) -> str:
    assert lesson.markdown is not None
    parts = [f"# Lesson {lesson.number}: {_line(lesson.title)}", ""]
    if lesson.description:
        parts += [f"*{_line(lesson.description)}*", ""]
    parts.append(lesson.markdown.strip())
    if lesson.quiz:
        parts += ["", "## Quiz", "", quiz_markdown(lesson.quiz)]
    return "\n".join(parts).rstrip() + "\n"


def quiz_markdown(quiz: tuple[QuizQuestion, ...]) -> str:
    """The questions first, then the answers, so a reader can try before looking."""
    lines: list[str] = []
    for number, question in enumerate(quiz, start=1):
        lines += [f"**{number}. {_line(question.question)}**", ""]
        lines += [f"- {_letter(i)}. {_line(choice)}" for i, choice in enumerate(question.choices)]
        lines.append("")
    lines += ["### Answers", ""]
    for number, question in enumerate(quiz, start=1):
        right = _letter(question.answer)
        explanation = _line(question.explanation)
        lines.append(
            f"{number}. {right}: {_line(question.choices[question.answer])}"
            + (f" — {explanation}" if explanation else "")
        )
    return "\n".join(lines)


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def _line(text: str) -> str:
    """One line: a title or a choice must not start a heading or a list of its own."""
    return " ".join(text.split())


def _link_text(text: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", text)
