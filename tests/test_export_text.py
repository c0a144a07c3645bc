"""The `markdown` and `html` exports (SPEC 10), held exactly against what the API says.

Courses are written through the API by the fake Messages API (quizzes included), on both
engines; the exports are downloaded from the endpoint a person's browser would use.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import pytest

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Running
from tests.exporthelp import (
    HOSTILE_DESCRIPTION,
    HOSTILE_LESSON,
    HOSTILE_QUIZ,
    HOSTILE_TITLE,
    api_lessons,
    fetch_export,
    html_lesson_sections,
    make_course,
    make_partial_course,
    open_zip,
    start_tags,
)
from tests.htmlcheck import executable_parts

# The fake's outline for "Sourdough baking", as a person would see the lesson files named.
SOURDOUGH_FILES = [
    "README.md",
    "01-lesson-1-sourdough-baking-fundamentals.md",
    "02-lesson-2-core-ideas-of-sourdough-baking.md",
    "03-lesson-3-sourdough-baking-in-practice.md",
]
SOURDOUGH_SLUG = "sourdough-baking-a-practical-course"
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def letter(index: int) -> str:
    return "ABCDEF"[index]


def expected_lesson_file(lesson: dict[str, Any], number: int) -> str:
    """A lesson's Markdown file as SPEC 10 describes it: text, then the quiz, then answers."""
    text = f"# Lesson {number}: {lesson['title']}\n\n*{lesson['description']}*\n\n"
    text += lesson["content"].strip() + "\n\n## Quiz\n\n"
    for n, question in enumerate(lesson["quiz"], start=1):
        text += f"**{n}. {question['question']}**\n\n"
        text += "".join(f"- {letter(i)}. {c}\n" for i, c in enumerate(question["choices"]))
        text += "\n"
    text += "### Answers\n\n"
    for n, question in enumerate(lesson["quiz"], start=1):
        right = question["answer"]
        text += f"{n}. {letter(right)}: {question['choices'][right]} — {question['explanation']}\n"
    return text


# -- markdown ---------------------------------------------------------------------------------


async def test_markdown_zip_is_an_index_and_one_file_per_lesson_as_the_api_has_them(
    running: Running,
) -> None:
    course = await make_course(running.http, running.services)
    lessons = await api_lessons(running.http, course["id"])
    response = await fetch_export(running.http, course["id"], "markdown")
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{SOURDOUGH_SLUG}-markdown.zip"'
    )
    files = open_zip(response.content)
    assert list(files) == SOURDOUGH_FILES
    assert sorted(files)[:-1] == SOURDOUGH_FILES[1:]  # "README.md" sorts last, the rest in order

    index = [
        f"# {course['title']}",
        "",
        course["description"],
        "",
        f"Topic: {course['topic']} · Level: beginner · Language: English",
        "",
        "## Lessons",
        "",
        *(
            f"{n}. [{lesson['title']}]({name})"
            for n, (lesson, name) in enumerate(
                zip(lessons, SOURDOUGH_FILES[1:], strict=True), start=1
            )
        ),
    ]
    assert files["README.md"].decode() == "\n".join(index) + "\n"
    for number, (lesson, name) in enumerate(
        zip(lessons, SOURDOUGH_FILES[1:], strict=True), start=1
    ):
        assert lesson["quiz_status"] == "complete" and len(lesson["quiz"]) == 4
        assert files[name].decode() == expected_lesson_file(lesson, number)


async def test_markdown_lists_unwritten_lessons_in_the_index_only(
    running: Running, fake: FakeAnthropic
) -> None:
    course = await make_partial_course(running.http, running.services, fake)
    lessons = await api_lessons(running.http, course["id"])
    files = open_zip((await fetch_export(running.http, course["id"], "markdown")).content)
    written = ["01-lesson-1-knots-fundamentals.md", "03-lesson-3-knots-in-practice.md"]
    assert list(files) == ["README.md", *written]
    index = files["README.md"].decode().split("## Lessons\n\n", 1)[1]
    assert index == (
        f"1. [{lessons[0]['title']}]({written[0]})\n"
        f"2. {lessons[1]['title']} (not written yet)\n"
        f"3. [{lessons[2]['title']}]({written[1]})\n"
        f"4. {lessons[3]['title']} (not written yet)\n"
    )
    assert files[written[1]].decode() == expected_lesson_file(lessons[2], 3)


async def test_exports_are_byte_identical_and_lesson_files_sort_in_course_order(
    running: Running,
) -> None:
    course = await make_course(running.http, running.services, topic="Knitting", lessons=12)
    for format_name in ("markdown", "html"):
        first = await fetch_export(running.http, course["id"], format_name)
        second = await fetch_export(running.http, course["id"], format_name)
        assert first.content == second.content, format_name
    markdown = open_zip((await fetch_export(running.http, course["id"], "markdown")).content)
    names = list(markdown)[1:]
    assert [name[:3] for name in names] == [f"{n:02d}-" for n in range(1, 13)]
    assert sorted(names) == names


async def test_exports_answer_409_while_the_course_is_written_and_404_for_unknowns(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 30
    created = await running.generate(lessons=2)
    for format_name in ("markdown", "html"):
        response = await running.http.get(
            f"/api/courses/{created['course_id']}/export/{format_name}"
        )
        assert response.status_code == 409
        assert "still being written" in response.json()["error"]
    assert (await running.http.post(f"/api/jobs/{created['job_id']}/cancel")).status_code == 202
    assert (await running.http.get(f"/api/courses/{created['course_id']}/export/html")).is_success

    missing = await running.http.get("/api/courses/999999/export/markdown")
    assert (missing.status_code, missing.json()) == (404, {"error": "no such course"})
    unknown = await running.http.get(f"/api/courses/{created['course_id']}/export/pdf")
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("no export format 'pdf'")


# -- html -------------------------------------------------------------------------------------


def lesson_body(lesson: dict[str, Any]) -> str:
    """The API's HTML of a lesson less a first heading that repeats the title (the export's
    lesson header shows the title already)."""
    html: str = lesson["content_html"]
    for level in ("h1", "h2"):
        repeated = f"<{level}>{escape(lesson['title'], quote=False)}</{level}>\n"
        if html.startswith(repeated):
            return html.removeprefix(repeated)
    return html


def quiz_markup(lesson: dict[str, Any]) -> list[str]:
    """Each question as the page shows it: choices visible, the answer in a <details>."""
    items = []
    for n, q in enumerate(lesson["quiz"], start=1):
        choices = "".join(
            f'<li><span class="letter">{letter(i)}</span> {escape(c)}</li>'
            for i, c in enumerate(q["choices"])
        )
        right = f"{letter(q['answer'])}. {escape(q['choices'][q['answer']])}"
        items.append(
            f'<li class="question"><p class="question-text"><span class="q-number">{n}.</span> '
            f'{escape(q["question"])}</p><ol class="choices">{choices}</ol>'
            '<details class="answer"><summary>Show the answer</summary>'
            f"<p><strong>{right}</strong> — {escape(q['explanation'])}</p></details></li>"
        )
    return items


def head_of(page: str) -> str:
    return page.split("</head>", 1)[0]


async def test_html_is_one_page_with_every_lesson_and_quiz_as_the_api_has_them(
    running: Running,
) -> None:
    course = await make_course(running.http, running.services)
    first = course["lessons"][1]["id"]
    # A hand-written lesson keeps its own first heading and its link.
    text = "## Why it rises\n\nSee [the guide](https://example.org/rise?a=1&b=2) & <b>this</b>."
    edited = await running.http.patch(f"/api/lessons/{first}", json={"content": text})
    assert edited.status_code == 200, edited.text
    await running.settle(course["job"]["job_id"])
    lessons = await api_lessons(running.http, course["id"])
    response = await fetch_export(running.http, course["id"], "html")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{SOURDOUGH_SLUG}.html"'
    )
    page = response.content.decode()

    head = head_of(page)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in head
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in head
    assert f"<title>{escape(course['title'])}</title>" in head
    assert f"<h1>{escape(course['title'])}</h1>" in page
    assert f'<p class="description">{escape(course["description"])}</p>' in page
    facts = "".join(
        f"<div><dt>{name}</dt><dd>{value}</dd></div>"
        for name, value in [
            ("Topic", "Sourdough baking"), ("Level", "Beginner"), ("Language", "English"),
            ("Lessons", "3"),
        ]
    )  # fmt: skip
    assert f'<dl class="facts">{facts}</dl>' in page

    anchors = [f"lesson-{name.removesuffix('.md')}" for name in SOURDOUGH_FILES[1:]]
    toc = page.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    assert [(tag["href"]) for tag_name, tag in start_tags(toc) if tag_name == "a"] == [
        f"#{anchor}" for anchor in anchors
    ]
    sections = html_lesson_sections(page)
    assert list(sections) == anchors
    for number, (lesson, anchor) in enumerate(zip(lessons, anchors, strict=True), start=1):
        section = sections[anchor]
        assert f'<span class="toc-title">{escape(lesson["title"])}</span>' in toc
        assert f'<p class="kicker">Lesson {number} of 3</p>' in section
        assert f'<h2 id="{anchor}-title">{escape(lesson["title"])}</h2>' in section
        assert f'<p class="description">{escape(lesson["description"])}</p>' in section
        assert f'<div class="lesson-text">\n{lesson_body(lesson)}</div>' in section
        # The text's own first heading repeated the title: only the section's header shows it.
        assert section.count(f">{escape(lesson['title'])}</h") == 1
        assert lesson["quiz_status"] == "complete"
        for item in quiz_markup(lesson):
            assert item in section
        assert section.count('<li class="question">') == len(lesson["quiz"])
    assert "<h2>Why it rises</h2>" in sections[anchors[1]]

    # Links: the TOC's fragments lead to sections; the only others are the lesson's own.
    tags = start_tags(page)
    ids = {attrs["id"] for _, attrs in tags if attrs.get("id")}
    hrefs = [attrs["href"] for name, attrs in tags if name == "a"]
    outside = [href for href in hrefs if href is not None and not href.startswith("#")]
    assert outside == ["https://example.org/rise?a=1&b=2"]
    assert all(href[1:] in ids for href in hrefs if href is not None and href.startswith("#"))
    # Nothing runs and nothing loads.
    assert "<script" not in page.lower()
    assert [attrs for _, attrs in tags if {"src", "srcset", "data", "action"} & set(attrs)] == []
    assert [name for name, _ in tags if name in ("link", "img", "iframe", "object", "embed")] == []
    assert executable_parts(page.split("<body>", 1)[1]) == []
    # The answers are folded on screen; print gets them in the key at the end.
    key = page.split('<section class="answer-key"', 1)[1]
    for lesson in lessons:
        q = lesson["quiz"][0]
        answer = f"{letter(q['answer'])}. {escape(q['choices'][q['answer']])}"
        assert f'<li><span class="q-number">1.</span> <p><strong>{answer}</strong>' in key


async def test_html_lists_unwritten_lessons_in_the_contents_only(
    running: Running, fake: FakeAnthropic
) -> None:
    course = await make_partial_course(running.http, running.services, fake)
    lessons = await api_lessons(running.http, course["id"])
    page = (await fetch_export(running.http, course["id"], "html")).content.decode()
    sections = html_lesson_sections(page)
    assert list(sections) == [
        "lesson-01-lesson-1-knots-fundamentals",
        "lesson-03-lesson-3-knots-in-practice",
    ]
    toc = page.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    for number in (2, 4):
        title = escape(lessons[number - 1]["title"])
        assert (
            f'<li class="toc-missing"><span><span class="toc-number">{number}</span>'
            f'<span class="toc-title">{title}</span></span>'
            '<span class="not-written">not written yet</span></li>'
        ) in toc
        assert title not in page.split("</nav>", 1)[1]  # no section, no answers
    assert "<dt>Lessons</dt><dd>4 (2 not written yet)</dd>" in page
    assert '<p class="kicker">Lesson 3 of 4</p>' in sections["lesson-03-lesson-3-knots-in-practice"]
    for item in quiz_markup(lessons[2]):
        assert item in sections["lesson-03-lesson-3-knots-in-practice"]


async def test_hostile_texts_stay_text_in_html_and_markdown(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.outline = {
        "title": HOSTILE_TITLE,
        "description": HOSTILE_DESCRIPTION,
        "lessons": [
            {"title": HOSTILE_TITLE, "description": HOSTILE_DESCRIPTION},
            {"title": "A plain lesson", "description": "Nothing odd here."},
        ],
    }
    fake.quiz = HOSTILE_QUIZ
    fake.lesson_text = lambda title: HOSTILE_LESSON
    course = await make_course(running.http, running.services, topic="<b>Bold</b> & co", lessons=2)
    lessons = await api_lessons(running.http, course["id"])
    assert course["title"] == HOSTILE_TITLE and lessons[0]["quiz"] == HOSTILE_QUIZ["questions"]

    page = (await fetch_export(running.http, course["id"], "html")).content.decode()
    assert f"<title>{escape(HOSTILE_TITLE)}</title>" in head_of(page)
    assert "<script" not in page.lower() and "<iframe" not in page.lower()
    tags = start_tags(page)
    assert [name for name, _ in tags if name in ("img", "link", "svg", "details", "style")] == [
        "style",  # the page's own stylesheet, in its head
        *["details"] * 6,  # the page's own answer folds, three questions in each lesson
    ]
    assert executable_parts(page.split("<body>", 1)[1]) == []
    for name, attrs in tags:
        assert not [key for key in attrs if key.startswith("on") or key == "style"], (name, attrs)
        assert "evil.example" not in " ".join(str(value) for value in attrs.values()), attrs
        assert "javascript" not in str(attrs.get("href", "")).lower(), attrs
    outside = [attrs["href"] for name, attrs in tags if name == "a" and attrs["href"][0] != "#"]
    assert outside == ["https://example.org/docs?a=1&b=2"] * 2
    sections = html_lesson_sections(page)
    for lesson, section in zip(lessons, sections.values(), strict=True):
        assert f'<div class="lesson-text">\n{lesson_body(lesson)}</div>' in section
    for question in HOSTILE_QUIZ["questions"]:
        assert escape(str(question["question"])) in page
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in page  # the topic

    files = open_zip((await fetch_export(running.http, course["id"], "markdown")).content)
    names = list(files)
    assert names[0] == "README.md" and all(
        re.fullmatch(r"0[12]-[a-z0-9-]+\.md", n) for n in names[1:]
    )
    assert files["README.md"].decode().startswith(f"# {HOSTILE_TITLE}\n")
    assert HOSTILE_LESSON in files[names[1]].decode()  # Markdown is text: kept as written


@pytest.mark.parametrize("format_name", ["markdown", "html"])
async def test_a_course_whose_lessons_all_failed_still_exports(
    running: Running, fake: FakeAnthropic, format_name: str
) -> None:
    fake.add_fault(kind="lesson", status=500, times=None)
    course = await make_course(running.http, running.services, lessons=2, status="error")
    body = (await fetch_export(running.http, course["id"], format_name)).content
    if format_name == "markdown":
        files = open_zip(body)
        assert list(files) == ["README.md"]
        assert files["README.md"].decode().endswith("(not written yet)\n")
    else:
        page = body.decode()
        assert html_lesson_sections(page) == {}
        assert page.count("not written yet</span>") == 2
        assert '<section class="answer-key"' not in page


async def test_html_names_the_language_only_when_it_knows_its_code(running: Running) -> None:
    pages = {}
    for language in ("Deutsch", "Klingon"):
        response = await running.http.post(
            "/api/courses/generate",
            json={"topic": "Brot backen", "lessons": 1, "language": language, "quizzes": False},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        await running.settle(created["job_id"])
        page = (await fetch_export(running.http, created["course_id"], "html")).content.decode()
        pages[language] = page
        assert f"<dt>Language</dt><dd>{language}</dd>" in page
    assert pages["Deutsch"].startswith('<!DOCTYPE html>\n<html lang="de">\n')
    # A wrong code would mislead hyphenation and screen readers: none is better.
    assert pages["Klingon"].startswith("<!DOCTYPE html>\n<html>\n")
