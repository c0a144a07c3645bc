"""Helpers for the export tests: real courses made through the API, their exports fetched
and opened. Every format's tests may use them; add new helpers at the end of the file.
"""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from typing import Any

import httpx

from coursegen.services import Services
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import job_reaches, woken_until

# What a hostile model (or person) could put in every text an export carries.
HOSTILE_TITLE = "Tags </title><script>alert(1)</script> & \"quotes\" 'too' ]]> <!-- x"
HOSTILE_DESCRIPTION = (
    "<img src=http://evil.example/pixel.png> <iframe src=https://evil.example/></iframe> "
    "&amp; ]]> </textarea></style></details>"
)
HOSTILE_LESSON = "\n\n".join(
    [
        "## Hostile lesson",
        "<script>alert(1)</script>",
        "<img src=http://evil.example/a.png onerror=alert(2)>",
        "![tracking pixel](http://evil.example/b.png)",
        '<iframe src="https://evil.example/frame"></iframe>',
        "[a javascript link](javascript:alert(3)) and [a data link](data:text/html,x)",
        '<a href="http://evil.example/raw">raw</a> <link rel=stylesheet href=//evil.example/c>',
        "<style>body{background:url(http://evil.example/d.png)}</style>",
        '<details open ontoggle="alert(4)">x</details> <svg onload=alert(5)>',
        "Entities &amp; &lt;b&gt; AT&T, ]]> and </title></section></main> in text.",
        "```html\n<script>alert(6)</script>\n```",
        "A [fine link](https://example.org/docs?a=1&b=2) stays a link.",
    ]
)
HOSTILE_QUIZ = {
    "questions": [
        {
            "question": f"Question {n} <script>alert({n})</script> & ]]> </details>?",
            "choices": [
                f"<img src=http://evil.example/q{n}.png>",
                'It\'s "quoted" & <b>bold</b>',
                "</li></ol></section> plain",
            ],
            "answer": n % 3,
            "explanation": "Because <a href=javascript:alert(1)>this</a> & that ]]>.",
        }
        for n in (1, 2, 3)
    ]
}


async def course_json(http: httpx.AsyncClient, course_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/courses/{course_id}")
    assert response.status_code == 200, response.text
    course: dict[str, Any] = response.json()
    return course


async def api_lessons(http: httpx.AsyncClient, course_id: int) -> list[dict[str, Any]]:
    """The course's lessons in order, each as `GET /api/lessons/{id}` gives it."""
    lessons = []
    for summary in (await course_json(http, course_id))["lessons"]:
        response = await http.get(f"/api/lessons/{summary['id']}")
        assert response.status_code == 200, response.text
        lessons.append(response.json())
    return lessons


async def make_course(
    http: httpx.AsyncClient,
    services: Services,
    *,
    topic: str = "Sourdough baking",
    lessons: int = 3,
    status: str = "complete",
) -> dict[str, Any]:
    """Generate a course (quizzes included) and wait for its job to end with `status`."""
    response = await http.post("/api/courses/generate", json={"topic": topic, "lessons": lessons})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    ended = await job_reaches(services, created["job_id"])
    assert ended["status"] == status, ended
    return await course_json(http, created["course_id"])


async def make_partial_course(
    http: httpx.AsyncClient, services: Services, fake: FakeAnthropic, lessons: int = 4
) -> dict[str, Any]:
    """A course ("Knots") whose lesson 2 failed and whose last lesson is still pending (its
    job cancelled while writing it); the others are written, with their quizzes."""
    fake.add_fault(kind="lesson", match="Lesson 2:", status=500)
    fake.add_fault(kind="lesson", match=f"Lesson {lessons}:", delay=60)
    response = await http.post("/api/courses/generate", json={"topic": "Knots", "lessons": lessons})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    course_id = created["course_id"]
    expected = ["complete", "error"] + ["complete"] * (lessons - 3) + ["generating"]

    async def waiting_on_the_last() -> bool | None:
        found = (await course_json(http, course_id))["lessons"]
        texts = [lesson["content_status"] for lesson in found]
        quizzes = [
            lesson["quiz_status"] for lesson in found if lesson["content_status"] == "complete"
        ]
        return True if texts == expected and set(quizzes) == {"complete"} else None

    await woken_until(services, waiting_on_the_last)
    cancelled = await http.post(f"/api/jobs/{created['job_id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    course = await course_json(http, course_id)
    assert [lesson["content_status"] for lesson in course["lessons"]] == [*expected[:-1], "pending"]
    return course


async def fetch_export(http: httpx.AsyncClient, course_id: int, format_name: str) -> httpx.Response:
    response = await http.get(f"/api/courses/{course_id}/export/{format_name}")
    assert response.status_code == 200, response.text
    return response


def open_zip(body: bytes) -> dict[str, bytes]:
    """The zip's members in their stored order (a dict keeps it), after checking its CRCs."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def start_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag of `html` with its attributes (entities decoded), as a browser reads it."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def html_lesson_sections(page: str) -> dict[str, str]:
    """The html export's lesson sections in order: id -> the section's markup."""
    body = page.split("<main>", 1)[1].split("</main>", 1)[0]
    sections = {}
    for chunk in body.split('<section class="lesson" id="')[1:]:
        ident, rest = chunk.split('"', 1)
        sections[ident] = rest
    return sections
