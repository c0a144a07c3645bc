"""`scorm12`: a SCORM 1.2 content package with one SCO that holds the whole course.

The SCO is one page (`index.html`): every written lesson is a section of it that the
player (`scorm_player/player.js`, the only script in the package) shows one at a time,
with a table of contents, previous/next links and the quizzes, scored in the page. One
document for the whole course because a SCO that navigated between documents would unload,
and SCORM 1.2 ends a session (`LMSFinish`) when its SCO unloads. Without script the page
still reads: every section shows and the links are plain anchors.

Model output is only ever text or the sanitised lesson HTML, and the page's
Content-Security-Policy allows no script but the player's own file and no outside load.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from html import escape
from importlib import resources

from coursegen.domain import QuizQuestion
from coursegen.export.archive import reproducible_zip
from coursegen.export.document import ExportCourse, ExportLesson, lesson_body

NOT_WRITTEN = "not written yet"
# Percent of the quiz questions to get right for `passed`; the manifest tells the LMS too.
MASTERY_SCORE = 80
LAUNCH = "index.html"
PLAYER_FILES = ("player.js", "player.css")

# Even if something executable got past the sanitiser, the browser would refuse it: only
# the package's own script and style, nothing fetched, framed, posted or loaded.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'none'; "
    "connect-src 'none'; font-src 'none'; media-src 'none'; object-src 'none'; "
    "frame-src 'none'; base-uri 'none'; form-action 'none'"
)

_IMSCP = "http://www.imsproject.org/xsd/imscp_rootv1p1p2"
_ADLCP = "http://www.adlnet.org/xsd/adlcp_rootv1p2"
_IMSMD = "http://www.imsglobal.org/xsd/imsmd_rootv1p2p1"
# The IMS CP 1.1.2 schema's titleType allows 200 characters; a lesson title may have 300.
_TITLE_LIMIT = 200
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def build(course: ExportCourse) -> bytes:
    files = package_files(course)
    return reproducible_zip([("imsmanifest.xml", manifest(course, [n for n, _ in files])), *files])


def package_files(course: ExportCourse) -> list[tuple[str, bytes | str]]:
    """Every file of the SCO, launch page first: the manifest lists each of them."""
    return [(LAUNCH, page(course)), *((name, _player_file(name)) for name in PLAYER_FILES)]


def has_quizzes(course: ExportCourse) -> bool:
    return any(lesson.written and lesson.quiz for lesson in course.lessons)


# -- the manifest -------------------------------------------------------------------------


def manifest(course: ExportCourse, files: list[str]) -> str:
    title = _xml(_clip(course.title, _TITLE_LIMIT))
    mastery = (
        f"\n        <adlcp:masteryscore>{MASTERY_SCORE}</adlcp:masteryscore>"
        if has_quizzes(course)
        else ""
    )
    listed = "\n".join(f'      <file href="{_xml(name)}"/>' for name in files)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="coursegen-course-{course.id}" version="1.0"
    xmlns="{_IMSCP}"
    xmlns:adlcp="{_ADLCP}"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="{_IMSCP} imscp_rootv1p1p2.xsd {_IMSMD} imsmd_rootv1p2p1.xsd {_ADLCP} adlcp_rootv1p2.xsd">
  <metadata>
    <schema>ADL SCORM</schema>
    <schemaversion>1.2</schemaversion>
  </metadata>
  <organizations default="ORG-1">
    <organization identifier="ORG-1">
      <title>{title}</title>
      <item identifier="ITEM-1" identifierref="RES-SCO-1" isvisible="true">
        <title>{title}</title>{mastery}
      </item>
    </organization>
  </organizations>
  <resources>
    <resource identifier="RES-SCO-1" type="webcontent" adlcp:scormtype="sco" href="{LAUNCH}">
{listed}
    </resource>
  </resources>
</manifest>
"""  # noqa: E501


# -- the SCO's page -----------------------------------------------------------------------


def page(course: ExportCourse) -> str:
    written = [lesson for lesson in course.lessons if lesson.written]
    pages = ["overview", *(_page_id(lesson) for lesson in written)]
    parts = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="generator" content="coursegen">',
        f"<title>{_text(course.title)}</title>",
        '<link rel="stylesheet" href="player.css">',
        '<script src="player.js" defer></script>',
        "</head>",
        f'<body data-mastery="{MASTERY_SCORE}" data-quiz-key="{quiz_key(course)}">',
        "<header>",
        f'<p class="course-title">{_text(course.title)}</p>',
        '<p id="tracking" role="status" aria-live="polite"></p>',
        "</header>",
        contents(course),
        "<main>",
        overview(course, next_id=pages[1] if len(pages) > 1 else None),
        *(
            lesson_section(lesson, previous_id=pages[i], next_id=_at(pages, i + 2))
            for i, lesson in enumerate(written)
        ),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def contents(course: ExportCourse) -> str:
    items = ['<li><a href="#overview">Overview</a></li>']
    for lesson in course.lessons:
        title = f"{lesson.number}. {_text(lesson.title)}"
        if lesson.written:
            items.append(f'<li><a href="#{_page_id(lesson)}">{title}</a></li>')
        else:
            items.append(f'<li class="not-written">{title} <em>({NOT_WRITTEN})</em></li>')
    return '<nav id="contents" aria-label="Lessons">\n<ol>\n' + "\n".join(items) + "\n</ol>\n</nav>"


def overview(course: ExportCourse, next_id: str | None) -> str:
    written = sum(lesson.written for lesson in course.lessons)
    questions = sum(len(lesson.quiz) for lesson in course.lessons if lesson.written)
    parts = [
        '<section id="overview" class="page">',
        f'<h1 class="page-title">{_text(course.title)}</h1>',
    ]
    if course.description:
        parts.append(f'<p class="description">{_text(course.description)}</p>')
    parts.append(
        f"<p>Topic: {_text(course.topic)} · Level: {_text(course.level)} · "
        f"Language: {_text(course.language)}</p>"
    )
    unwritten = len(course.lessons) - written
    parts.append(
        f"<p>{len(course.lessons)} lessons"
        + (f", {unwritten} of them {NOT_WRITTEN}" if unwritten else "")
        + ".</p>"
    )
    if questions:
        parts.append(
            f'<p class="mastery">The lessons end with quizzes ({questions} questions). '
            f'To pass, answer at least <span class="mastery-value">{MASTERY_SCORE}</span>% '
            "of the questions correctly.</p>"
        )
    parts += [_pager(None, next_id), "</section>"]
    return "\n".join(parts)


def lesson_section(lesson: ExportLesson, previous_id: str | None, next_id: str | None) -> str:
    assert lesson.html is not None
    parts = [
        f'<section id="{_page_id(lesson)}" class="page lesson">',
        # The page is shown on its own: its title is its top heading, the text's own below.
        f'<h1 class="page-title">Lesson {lesson.number}: {_text(lesson.title)}</h1>',
    ]
    if lesson.description:
        parts.append(f'<p class="description">{_text(lesson.description)}</p>')
    parts.append(f'<div class="content">\n{_links_open_apart(lesson_body(lesson))}\n</div>')
    if lesson.quiz:
        parts.append(quiz_form(lesson))
    parts += [_pager(previous_id, next_id), "</section>"]
    return "\n".join(parts)


def quiz_form(lesson: ExportLesson) -> str:
    """A quiz the player scores; without script its answers are folded under each question."""
    parts = [f'<form class="quiz" aria-label="Quiz of lesson {lesson.number}">', "<h2>Quiz</h2>"]
    for number, question in enumerate(lesson.quiz, start=1):
        parts.append(_question(lesson, number, question))
    parts += [
        '<p class="quiz-actions"><button type="submit">Check answers</button> '
        '<span class="quiz-result" role="status"></span></p>',
        "</form>",
    ]
    return "\n".join(parts)


def _question(lesson: ExportLesson, number: int, question: QuizQuestion) -> str:
    name = f"q-{lesson.number}-{number}"
    choices = "\n".join(
        f'<label><input type="radio" name="{name}" value="{index}"> '
        f"{_letter(index)}. {_text(choice)}</label>"
        for index, choice in enumerate(question.choices)
    )
    right = question.answer
    explanation = f" — {_text(question.explanation)}" if question.explanation else ""
    return (
        f'<fieldset class="question" data-answer="{right}">\n'
        f"<legend>{number}. {_text(question.question)}</legend>\n{choices}\n"
        f'<details class="answer"><summary>Answer</summary>'
        f"<p>{_letter(right)}. {_text(question.choices[right])}{explanation}</p></details>\n"
        "</fieldset>"
    )


def quiz_key(course: ExportCourse) -> str:
    """A short digest of the quizzes' shape, so answers saved for other quizzes are ignored."""
    shape = "|".join(
        ",".join(f"{len(q.choices)}:{q.answer}" for q in lesson.quiz)
        for lesson in course.lessons
        if lesson.written
    )
    return hashlib.sha256(shape.encode()).hexdigest()[:8]


def _pager(previous_id: str | None, next_id: str | None) -> str:
    links = []
    if previous_id:
        links.append(f'<a class="previous" rel="prev" href="#{previous_id}">← Previous</a>')
    if next_id:
        links.append(f'<a class="next" rel="next" href="#{next_id}">Next →</a>')
    return '<nav class="pager" aria-label="Pages">' + " ".join(links) + "</nav>"


def _page_id(lesson: ExportLesson) -> str:
    # A slug is "03-loops": ASCII, unique, and short enough for cmi.core.lesson_location.
    return f"lesson-{lesson.slug}"


def _links_open_apart(html: str) -> str:
    """Lesson links open a new window: leaving the SCO's frame would end the LMS session."""
    return html.replace("<a ", '<a target="_blank" ')


@cache
def _player_file(name: str) -> str:
    return (resources.files(__package__) / "scorm_player" / name).read_text(encoding="utf-8")


def _at(items: list[str], index: int) -> str | None:
    return items[index] if index < len(items) else None


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def _text(text: str) -> str:
    return escape(" ".join(_NOT_XML.sub("", text).split()))


def _xml(text: str) -> str:
    return escape(_NOT_XML.sub("", text), quote=True)


def _clip(text: str, limit: int) -> str:
    text = " ".join(_NOT_XML.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
