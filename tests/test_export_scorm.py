"""The `scorm12` export (SPEC 10): a SCORM 1.2 content package an LMS imports.

Courses are made through the API (the fake Messages API writes them and their quizzes)
and the package is fetched as a user downloads it. Its manifest is checked against the
rules LMSs enforce on import, and validated against the official SCORM 1.2 XSDs
(tests/data/scorm12/, see the README there); its one page is parsed to check that every
written lesson and quiz is in it, the rest listed as not written, and that nothing in it
can run or load but the package's own player. The player itself runs in
tests/browser/test_scorm_runtime.py, against a real SCORM runtime. Both engines.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import xmlschema

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Running
from tests.exporthelp import (
    HOSTILE_DESCRIPTION,
    HOSTILE_LESSON,
    HOSTILE_QUIZ,
    HOSTILE_TITLE,
    fetch_export,
    make_partial_course,
    open_zip,
)

IMSCP = "http://www.imsproject.org/xsd/imscp_rootv1p1p2"
ADLCP = "http://www.adlnet.org/xsd/adlcp_rootv1p2"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"cp": IMSCP, "adlcp": ADLCP}
SCHEMAS = Path(__file__).parent / "data" / "scorm12"
NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# -- making, fetching and reading packages ----------------------------------------------------


def quiz(answers: tuple[int, ...], text: str = "starter") -> dict[str, Any]:
    """A quiz tool input: one question per entry of `answers` (the right choice's index)."""
    return {
        "questions": [
            {
                "question": f"Question {n} about the {text}?",
                "choices": ["Flour and water", "Only yeast", "Sugar", "Salt"],
                "answer": answer,
                "explanation": f"Explanation {n}: a {text} is flour and water, fermented.",
            }
            for n, answer in enumerate(answers, start=1)
        ]
    }


async def made_course(
    running: Running, lessons: int = 3, failing: tuple[int, ...] = (), **options: Any
) -> dict[str, Any]:
    """A course written to its end through the API (lessons in `failing` fail), in full."""
    response = await running.http.post(
        "/api/courses/generate", json={"topic": "Sourdough baking", "lessons": lessons, **options}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    await running.settle(created["job_id"])
    return await full_course(running, created["course_id"])


async def full_course(running: Running, course_id: int) -> dict[str, Any]:
    """The course, and each of its lessons as GET /api/lessons/{id} shows it."""
    course: dict[str, Any] = (await running.http.get(f"/api/courses/{course_id}")).json()
    course["lessons"] = [
        (await running.http.get(f"/api/lessons/{lesson['id']}")).json()
        for lesson in course["lessons"]
    ]
    return course


async def export_scorm(running: Running, course_id: int) -> bytes:
    response = await fetch_export(running.http, course_id, "scorm12")
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith(
        '-scorm12.zip"'
    ), disposition
    return response.content


def scorm12_schema() -> xmlschema.XMLSchema10:
    """The IMS CP 1.1.2 and ADL CP 1.2 schemas as SCORM 1.2 ships them (see the README)."""

    # ims_xml.xsd binds the default namespace to the reserved XML namespace, which no
    # namespace-aware parser accepts; it only declares xml:lang and xml:base, which the
    # W3C's own schema of the XML namespace (bundled with xmlschema) declares alike.
    def mapped(url: str) -> str:
        if url.endswith("ims_xml.xsd"):
            return (Path(xmlschema.__file__).parent / "schemas" / "XML" / "xml.xsd").as_uri()
        return url

    return xmlschema.XMLSchema10(
        [str(SCHEMAS / "imscp_rootv1p1p2.xsd"), str(SCHEMAS / "adlcp_rootv1p2.xsd")],
        uri_mapper=mapped,
    )


@dataclass
class Tag:
    name: str
    attrs: dict[str, str]


@dataclass
class PageParser(HTMLParser):
    """Every start tag of the page and its text, as a browser's tokenizer would see them."""

    tags: list[Tag] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(Tag(tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, name: str) -> list[Tag]:
        return [tag for tag in self.tags if tag.name == name]


def parse_page(html: bytes) -> PageParser:
    parser = PageParser()
    parser.feed(html.decode())
    parser.close()
    return parser


def section_of(html: str, page_id: str) -> str:
    match = re.search(rf'<section id="{page_id}" .*?</section>', html, re.S)
    assert match, page_id
    return match.group(0)


# -- the manifest -----------------------------------------------------------------------------


async def test_the_manifest_follows_the_rules_lmss_enforce_and_the_official_schemas(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.quiz = quiz((1, 0, 2))
    fake.add_fault(kind="lesson", match="Lesson 2", status=500)
    course = await made_course(running, lessons=3)
    files = open_zip(await export_scorm(running, course["id"]))

    manifest = ET.fromstring(files["imsmanifest.xml"])
    assert manifest.tag == f"{{{IMSCP}}}manifest"
    assert files["imsmanifest.xml"].startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    # The schema locations name each namespace in use with its XSD, in pairs.
    hints = manifest.attrib[f"{{{XSI}}}schemaLocation"].split()
    pairs = dict(zip(hints[::2], hints[1::2], strict=True))
    assert pairs[IMSCP] == "imscp_rootv1p1p2.xsd" and pairs[ADLCP] == "adlcp_rootv1p2.xsd"
    assert manifest.findtext("cp:metadata/cp:schema", namespaces=NS) == "ADL SCORM"
    assert manifest.findtext("cp:metadata/cp:schemaversion", namespaces=NS) == "1.2"

    # One organization, the default, with one item launching the one SCO.
    organizations = manifest.find("cp:organizations", NS)
    assert organizations is not None
    [organization] = organizations.findall("cp:organization", NS)
    assert organizations.attrib["default"] == organization.attrib["identifier"]
    assert organization.findtext("cp:title", namespaces=NS) == course["title"]
    [item] = organization.findall("cp:item", NS)
    assert item.findtext("cp:title", namespaces=NS) == course["title"]
    assert item.findtext("adlcp:masteryscore", namespaces=NS) == "80"
    [resource] = manifest.findall("cp:resources/cp:resource", NS)
    assert item.attrib["identifierref"] == resource.attrib["identifier"]
    assert resource.attrib["type"] == "webcontent"
    assert resource.attrib[f"{{{ADLCP}}}scormtype"] == "sco"
    assert resource.attrib["href"] == "index.html"

    # Every file of the package is listed, and every listed file is in the package.
    listed = [file.attrib["href"] for file in resource.findall("cp:file", NS)]
    assert sorted(listed) == sorted(set(files) - {"imsmanifest.xml"})
    assert resource.attrib["href"] in listed
    # Identifiers are unique xsd:IDs; every reference resolves to one.
    identifiers = [e.attrib["identifier"] for e in manifest.iter() if "identifier" in e.attrib]
    assert len(identifiers) == len(set(identifiers)) and all(map(NCNAME.match, identifiers))
    references = [e.attrib["identifierref"] for e in manifest.iter() if "identifierref" in e.attrib]
    assert references and set(references) <= set(identifiers)

    schema = scorm12_schema()
    schema.validate(files["imsmanifest.xml"].decode())
    # The validator has teeth: what an LMS would refuse, it refuses.
    text = files["imsmanifest.xml"].decode()
    for broken in (
        text.replace('adlcp:scormtype="sco"', 'adlcp:scormtype="lesson"'),
        text.replace("<schema>ADL SCORM</schema>", "<schema>ADL SCORM</schema><schema/>"),
        text.replace('identifier="ORG-1"', 'identifier="1-ORG"'),
        re.sub(r"<title>[^<]*</title>", f"<title>{'x' * 201}</title>", text, count=1),
    ):
        assert not schema.is_valid(broken)


async def test_every_written_lesson_is_a_page_with_its_quiz_and_the_others_are_listed(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.quiz = quiz((1, 0, 2, 3))
    # Lessons 1 and 3 written, 2 failed, 4 still pending (its job cancelled).
    partial = await make_partial_course(running.http, running.services, fake, lessons=4)
    course = await full_course(running, partial["id"])
    first, second, third, fourth = course["lessons"]
    files = open_zip(await export_scorm(running, course["id"]))
    html = files["index.html"].decode()
    page = parse_page(files["index.html"])

    # The page shows an overview and one page per written lesson, in course order.
    sections = [tag.attrs["id"] for tag in page.all("section")]
    assert sections == ["overview", "lesson-01-" + _slug(first), "lesson-03-" + _slug(third)]
    contents = re.search(r'<nav id="contents".*?</nav>', html, re.S)
    assert contents
    entries = re.findall(r"<li.*?</li>", contents.group(0))
    assert len(entries) == 5  # the overview and every lesson
    for lesson, entry in ((second, entries[2]), (fourth, entries[4])):
        assert f"{lesson['position']}. {lesson['title']}" in entry
        assert "not written yet" in entry and "<a " not in entry
    assert "4 lessons, 2 of them not written yet." in section_of(html, "overview")
    for lesson, section_id in ((first, sections[1]), (third, sections[2])):
        section = section_of(html, section_id)
        assert f"Lesson {lesson['position']}: {lesson['title']}" in section
        # The body is the lesson's text, rendered: its first paragraph's words are there.
        words = next(line for line in lesson["content"].splitlines() if line[:1].isalpha())
        assert words.split()[0] in section
        # Each question with its choices, and the right answer the API holds.
        answers = [int(a) for a in re.findall(r'data-answer="(\d)"', section)]
        assert answers == [q["answer"] for q in lesson["quiz"]] == [1, 0, 2, 3]
        for question in lesson["quiz"]:
            assert question["question"] in section
            assert all(choice in section for choice in question["choices"])
    # Previous and next walk the pages in order, and nothing else.
    pagers = re.findall(r'<nav class="pager".*?</nav>', html)
    assert [re.findall(r'href="#([^"]+)"', pager) for pager in pagers] == [
        [sections[1]], [sections[0], sections[2]], [sections[1]],
    ]  # fmt: skip
    assert "answer at least" in html and "80" in html


async def test_titles_too_long_for_the_manifest_are_cut_to_what_the_schema_allows(
    running: Running, fake: FakeAnthropic
) -> None:
    long_title = "Fermentation " * 23  # 299 characters; IMS CP titles hold 200
    fake.outline = {
        "title": long_title,
        "description": "Long.",
        "lessons": [{"title": "Lesson 1: short", "description": "Short."}],
    }
    course = await made_course(running, lessons=1)
    files = open_zip(await export_scorm(running, course["id"]))
    scorm12_schema().validate(files["imsmanifest.xml"].decode())
    manifest = ET.fromstring(files["imsmanifest.xml"])
    title = manifest.findtext("cp:organizations/cp:organization/cp:title", namespaces=NS)
    assert title is not None and len(title) == 200 and title.endswith("…")
    assert long_title.startswith(title[:-1])
    # The page itself keeps the whole title.
    assert long_title.strip() in "".join(parse_page(files["index.html"]).text)


async def test_a_course_without_quizzes_has_no_mastery_score(running: Running) -> None:
    course = await made_course(running, lessons=2, quizzes=False)
    files = open_zip(await export_scorm(running, course["id"]))
    manifest = ET.fromstring(files["imsmanifest.xml"])
    assert manifest.find(".//adlcp:masteryscore", NS) is None
    assert b'class="quiz"' not in files["index.html"]
    scorm12_schema().validate(files["imsmanifest.xml"].decode())


async def test_two_exports_of_a_course_are_the_same_bytes(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.quiz = quiz((0, 1, 2))
    course = await made_course(running, lessons=2)
    first = await export_scorm(running, course["id"])
    assert await export_scorm(running, course["id"]) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.namelist()[0] == "imsmanifest.xml"


# -- hostile content --------------------------------------------------------------------------


async def test_hostile_content_is_inert_in_the_package(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.outline = {
        "title": HOSTILE_TITLE,
        "description": HOSTILE_DESCRIPTION,
        "lessons": [
            {"title": "Lesson 1: <img src=x onerror=alert(1)>", "description": "</p><script>"},
            {"title": "Lesson 2: ok", "description": HOSTILE_DESCRIPTION},
        ],
    }
    fake.quiz = HOSTILE_QUIZ
    course = await made_course(running, lessons=2)
    first = course["lessons"][0]
    response = await running.http.patch(
        f"/api/lessons/{first['id']}", json={"content": HOSTILE_LESSON, "title": HOSTILE_TITLE}
    )
    assert response.status_code == 200, response.text
    course = await full_course(running, course["id"])
    await running.settle(course["job"]["job_id"])  # the edited text's new quiz
    files = open_zip(await export_scorm(running, course["id"]))

    manifest = ET.fromstring(files["imsmanifest.xml"])
    assert manifest.findtext("cp:organizations/cp:organization/cp:title", namespaces=NS) == (
        HOSTILE_TITLE
    )
    scorm12_schema().validate(files["imsmanifest.xml"].decode())

    page = parse_page(files["index.html"])
    # Only the player's own script and style; no element that loads or embeds anything.
    assert [tag.attrs for tag in page.all("script")] == [{"src": "player.js", "defer": ""}]
    assert [tag.attrs["href"] for tag in page.all("link")] == ["player.css"]
    for name in ("img", "iframe", "object", "embed", "svg", "style", "base"):
        assert page.all(name) == [], name
    for tag in page.tags:
        assert not [a for a in tag.attrs if a.startswith("on")], tag
        assert "src" not in tag.attrs or tag.name == "script", tag
    for link in page.all("a"):
        href = link.attrs["href"]
        assert href.startswith(("#", "https://", "http://", "mailto:")), href
        if not href.startswith("#"):
            assert link.attrs["target"] == "_blank", link
            assert set(link.attrs["rel"].split()) >= {"noopener", "noreferrer"}
    [policy] = [
        t for t in page.all("meta") if t.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    directives = dict(d.strip().split(" ", 1) for d in policy.attrs["content"].split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    # What the model wrote shows as text: the reader sees the markup, nothing runs it.
    text = "".join(page.text)
    assert HOSTILE_TITLE in text
    for question in HOSTILE_QUIZ["questions"]:
        assert question["question"] in text
        assert all(choice in text for choice in question["choices"])
    assert "<script>alert(1)</script>" in text  # the lesson's raw HTML, shown as text
    # player.js is the package's own file, the same in every package.
    player = (
        Path(__file__).parents[1] / "src/coursegen/export/scorm_player/player.js"
    ).read_bytes()
    assert files["player.js"] == player


def _slug(lesson: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", lesson["title"].lower()).strip("-")[:60].rstrip("-")
