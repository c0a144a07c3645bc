"""`html`: the course as one self-contained page that reads offline and prints cleanly.

Nothing in it runs or loads: no script, no external resource, inline CSS only, and a
Content-Security-Policy that would refuse them anyway. Every text the model or a person
wrote is escaped here; lesson bodies are the sanitised HTML the page itself shows.

In print each lesson starts a page, the navigation links go, links show their address,
and the folded quiz answers are replaced by an answer key on pages of their own at the
end, so a printed quiz can still be tried before the answers are seen.
"""

from __future__ import annotations

from html import escape

from coursegen.domain import QuizQuestion
from coursegen.export.document import ExportCourse, ExportLesson, lesson_body

NOT_WRITTEN = "not written yet"

# Even if something executable got past the sanitiser, the browser would refuse it: no
# script, no fetch, no image, font or frame, no <base> and no form target.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

# The course's language is free text ("English", "Deutsch"); `lang` wants a code. Only the
# common names are known: a wrong code would be worse than none (hyphenation, voices).
_LANGUAGE_CODES = {
    "english": "en", "german": "de", "deutsch": "de", "french": "fr", "français": "fr",
    "spanish": "es", "español": "es", "italian": "it", "italiano": "it", "portuguese": "pt",
    "português": "pt", "dutch": "nl", "nederlands": "nl", "polish": "pl", "polski": "pl",
    "swedish": "sv", "svenska": "sv", "danish": "da", "dansk": "da", "norwegian": "no",
    "norsk": "no", "finnish": "fi", "suomi": "fi", "czech": "cs", "čeština": "cs",
    "russian": "ru", "русский": "ru", "ukrainian": "uk", "українська": "uk", "greek": "el",
    "turkish": "tr", "türkçe": "tr", "japanese": "ja", "日本語": "ja", "chinese": "zh",
    "中文": "zh", "korean": "ko", "한국어": "ko", "arabic": "ar", "hebrew": "he", "hindi": "hi",
}  # fmt: skip


def build(course: ExportCourse) -> bytes:
    return page(course).encode()


def page(course: ExportCourse) -> str:
    code = _LANGUAGE_CODES.get(course.language.strip().lower())
    lang = f' lang="{code}"' if code else ""
    parts = [
        "<!DOCTYPE html>",
        f"<html{lang}>",
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="generator" content="coursegen">',
        f"<title>{_text(course.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        course_header(course),
        contents(course),
        "<main>",
        *(
            lesson_section(lesson, len(course.lessons))
            for lesson in course.lessons
            if lesson.written
        ),
        "</main>",
        answer_key(course),
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def course_header(course: ExportCourse) -> str:
    written = sum(lesson.written for lesson in course.lessons)
    count = len(course.lessons)
    lessons = f"{count}" if written == count else f"{count} ({count - written} {NOT_WRITTEN})"
    facts = [
        ("Topic", course.topic),
        ("Level", course.level.capitalize()),
        ("Language", course.language),
        ("Lessons", lessons),
    ]
    items = "".join(f"<div><dt>{name}</dt><dd>{_text(value)}</dd></div>" for name, value in facts)
    description = f'<p class="description">{_text(course.description)}</p>'
    return (
        '<header class="course" id="top">\n'
        f"<h1>{_text(course.title)}</h1>\n"
        f"{description if course.description else ''}\n"
        f'<dl class="facts">{items}</dl>\n'
        "</header>"
    )


def contents(course: ExportCourse) -> str:
    items = []
    for lesson in course.lessons:
        number = f'<span class="toc-number">{lesson.number}</span>'
        title = f'<span class="toc-title">{_text(lesson.title)}</span>'
        if lesson.written:
            items.append(f'<li><a href="#{anchor(lesson)}">{number}{title}</a></li>')
        else:
            note = f'<span class="not-written">{NOT_WRITTEN}</span>'
            items.append(f'<li class="toc-missing"><span>{number}{title}</span>{note}</li>')
    listing = f"<ol>\n{chr(10).join(items)}\n</ol>" if items else "<p>No lessons.</p>"
    return (
        '<nav class="toc" id="contents" aria-labelledby="contents-title">\n'
        '<h2 id="contents-title">Contents</h2>\n'
        f"{listing}\n"
        "</nav>"
    )


def anchor(lesson: ExportLesson) -> str:
    """The lesson's id in the page: its slug is unique in the course and plain ASCII."""
    return f"lesson-{lesson.slug}"


def lesson_section(lesson: ExportLesson, count: int) -> str:
    ident = anchor(lesson)
    description = (
        f'<p class="description">{_text(lesson.description)}</p>\n' if lesson.description else ""
    )
    quiz = quiz_section(lesson) if lesson.quiz else ""
    return (
        f'<section class="lesson" id="{ident}" aria-labelledby="{ident}-title">\n'
        '<header class="lesson-head">\n'
        f'<p class="kicker">Lesson {lesson.number} of {count}</p>\n'
        f'<h2 id="{ident}-title">{_text(lesson.title)}</h2>\n'
        f"{description}"
        "</header>\n"
        f'<div class="lesson-text">\n{lesson_body(lesson)}</div>\n'
        f"{quiz}"
        '<p class="to-contents"><a href="#contents">Back to contents</a></p>\n'
        "</section>"
    )


# A sanitised heading has no attributes; a lesson's first one is usually its title again
# (the prompt asks the model to start with the title as a heading).
def quiz_section(lesson: ExportLesson) -> str:
    ident = f"{anchor(lesson)}-quiz"
    questions = "\n".join(
        question_item(number, question) for number, question in enumerate(lesson.quiz, start=1)
    )
    return (
        f'<section class="quiz" aria-labelledby="{ident}">\n'
        f'<h3 id="{ident}">Quiz</h3>\n'
        f'<ol class="questions">\n{questions}\n</ol>\n'
        "</section>\n"
    )


def question_item(number: int, question: QuizQuestion) -> str:
    choices = "".join(
        f'<li><span class="letter">{_letter(i)}</span> {_text(choice)}</li>'
        for i, choice in enumerate(question.choices)
    )
    return (
        '<li class="question">'
        f'<p class="question-text"><span class="q-number">{number}.</span> '
        f"{_text(question.question)}</p>"
        f'<ol class="choices">{choices}</ol>'
        f'<details class="answer"><summary>Show the answer</summary>{answer(question)}</details>'
        "</li>"
    )


def answer(question: QuizQuestion) -> str:
    right = f"{_letter(question.answer)}. {_text(question.choices[question.answer])}"
    explanation = f" — {_text(question.explanation)}" if question.explanation else ""
    return f"<p><strong>{right}</strong>{explanation}</p>"


def answer_key(course: ExportCourse) -> str:
    """Every lesson's answers together, shown only in print (on screen they are folded)."""
    quizzed = [lesson for lesson in course.lessons if lesson.written and lesson.quiz]
    if not quizzed:
        return ""
    groups = []
    for lesson in quizzed:
        answers = "".join(
            f'<li><span class="q-number">{number}.</span> {answer(question)}</li>'
            for number, question in enumerate(lesson.quiz, start=1)
        )
        groups.append(
            f"<h3>Lesson {lesson.number}: {_text(lesson.title)}</h3>\n"
            f'<ol class="key">{answers}</ol>'
        )
    return (
        '<section class="answer-key" aria-labelledby="answer-key-title">\n'
        '<h2 id="answer-key-title">Answer key</h2>\n' + "\n".join(groups) + "\n</section>"
    )


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def _text(text: str) -> str:
    return escape(text, quote=True)


STYLE = """
:root {
  --bg: #fbfaf7; --surface: #ffffff; --text: #1d2126; --muted: #5d6670;
  --border: #dedbd3; --accent: #2f5d8a; --accent-soft: #e8eff6;
  color-scheme: light dark;
  font: 17px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15181c; --surface: #1d2126; --text: #e7e9ec; --muted: #9aa4ae;
    --border: #343a42; --accent: #8ab8e6; --accent-soft: #1f2c3a;
  }
}
*, *::before, *::after { box-sizing: border-box; }
body {
  margin: 0 auto; padding: 3rem 1.5rem 4rem; max-width: 46rem;
  background: var(--bg); color: var(--text);
}
a { color: var(--accent); }
h1, h2, h3, h4 { line-height: 1.25; }
.course h1 { font-size: 2.3rem; margin: 0 0 0.6rem; letter-spacing: -0.01em; }
.course .description { font-size: 1.15rem; color: var(--muted); margin: 0 0 1.4rem; }
.facts {
  display: flex; flex-wrap: wrap; gap: 0.4rem 2rem; margin: 0; padding: 0.9rem 0;
  border-top: 1px solid var(--border); border-bottom: 1px solid var(--border);
}
.facts dt {
  font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted);
}
.facts dd { margin: 0; font-weight: 600; }
.toc { margin: 2.2rem 0 3rem; }
.toc h2 { font-size: 1.3rem; margin: 0 0 0.8rem; }
.toc ol { list-style: none; margin: 0; padding: 0; }
.toc li { border-bottom: 1px solid var(--border); }
.toc li > a, .toc li > span {
  display: flex; gap: 0.9rem; padding: 0.55rem 0.2rem; text-decoration: none;
}
.toc li > a:hover, .toc li > a:focus-visible { background: var(--accent-soft); }
.toc-number {
  min-width: 1.8rem; font-variant-numeric: tabular-nums; color: var(--muted); text-align: right;
}
.toc-missing { display: flex; justify-content: space-between; align-items: baseline; }
.toc-missing .toc-title { color: var(--muted); }
.not-written {
  font-size: 0.8rem; color: var(--muted); border: 1px solid var(--border);
  border-radius: 999px; padding: 0 0.6rem; white-space: nowrap;
}
.lesson {
  margin: 0 0 2.5rem; padding: 2rem 2.2rem; background: var(--surface);
  border: 1px solid var(--border); border-radius: 10px;
}
.lesson-head { border-bottom: 1px solid var(--border); margin-bottom: 1.2rem; }
.kicker {
  margin: 0; font-size: 0.8rem; font-weight: 600; text-transform: uppercase;
  letter-spacing: 0.08em; color: var(--accent);
}
.lesson-head h2 { font-size: 1.8rem; margin: 0.2rem 0 0.5rem; }
.lesson-head .description { margin: 0 0 1rem; color: var(--muted); font-style: italic; }
.lesson-text { overflow-wrap: break-word; }
.lesson-text h1, .lesson-text h2 { font-size: 1.4rem; margin: 1.8rem 0 0.6rem; }
.lesson-text h3 { font-size: 1.15rem; margin: 1.5rem 0 0.5rem; }
.lesson-text h4, .lesson-text h5, .lesson-text h6 { font-size: 1rem; }
.lesson-text code, .lesson-text pre {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 0.88em;
}
.lesson-text :not(pre) > code {
  background: var(--accent-soft); padding: 0.1em 0.3em; border-radius: 4px;
}
.lesson-text pre {
  overflow-x: auto; padding: 0.8rem 1rem; border-radius: 6px; background: var(--bg);
  border: 1px solid var(--border); line-height: 1.45;
}
.lesson-text blockquote {
  margin: 1rem 0; padding: 0.2rem 1rem; border-left: 3px solid var(--accent);
  color: var(--muted);
}
.lesson-text table { display: block; overflow-x: auto; border-collapse: collapse; }
.lesson-text th, .lesson-text td { border: 1px solid var(--border); padding: 0.35rem 0.6rem; }
.lesson-text th { background: var(--accent-soft); }
.lesson-text hr { border: 0; border-top: 1px solid var(--border); margin: 2rem 0; }
.quiz {
  margin-top: 2rem; padding: 1.2rem 1.4rem; border-radius: 8px; background: var(--accent-soft);
}
.quiz h3 { margin: 0 0 0.8rem; font-size: 1.2rem; }
.questions, .choices, .key { list-style: none; margin: 0; padding: 0; }
.question { margin: 0 0 1.2rem; }
.question:last-child { margin-bottom: 0; }
.question-text { margin: 0 0 0.4rem; font-weight: 600; }
.q-number { color: var(--accent); }
.choices li { margin: 0.15rem 0 0.15rem 1.4rem; }
.letter {
  display: inline-block; min-width: 1.5rem; font-weight: 600; color: var(--muted);
}
.letter::after { content: "."; }
.answer { margin: 0.5rem 0 0 1.4rem; }
.answer summary { cursor: pointer; color: var(--accent); font-size: 0.9rem; }
.answer p { margin: 0.4rem 0 0; }
.to-contents { margin: 1.5rem 0 0; font-size: 0.9rem; }
.answer-key { display: none; }
.key li { margin: 0 0 0.5rem; }
.key p { display: inline; margin: 0; }
@media (max-width: 40rem) {
  body { padding: 1.5rem 0.8rem 3rem; }
  .lesson { padding: 1.2rem 1rem; }
  .course h1 { font-size: 1.8rem; }
}
@media print {
  @page { margin: 18mm 17mm 20mm; }
  :root {
    --bg: #ffffff; --surface: #ffffff; --text: #000000; --muted: #444444;
    --border: #bbbbbb; --accent: #1f3f60; --accent-soft: #f1f1f1;
    color-scheme: light; font-size: 11pt; line-height: 1.5;
  }
  body { max-width: none; padding: 0; }
  a { color: inherit; }
  .toc li > a:hover { background: none; }
  .lesson {
    break-before: page; margin: 0; padding: 0; border: 0; border-radius: 0;
  }
  .lesson-text a[href^="http"]::after, .lesson-text a[href^="mailto"]::after {
    content: " (" attr(href) ")"; font-size: 0.85em; color: var(--muted);
    overflow-wrap: anywhere;
  }
  .lesson-text pre { white-space: pre-wrap; overflow: visible; }
  .lesson-text table { display: table; }
  h1, h2, h3, h4, .lesson-head, .question-text { break-after: avoid; }
  pre, blockquote, tr, .question, .key li { break-inside: avoid; }
  .quiz { background: none; border: 1px solid var(--border); break-before: auto; }
  .to-contents, .answer { display: none; }
  .answer-key { display: block; break-before: page; }
  .answer-key h2 { font-size: 1.8rem; margin-top: 0; }
}
"""
