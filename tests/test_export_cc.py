"""The `cc` export (SPEC 10): an IMS Common Cartridge 1.1 package an LMS imports.

Courses are made through the API (the fake Messages API writes them, quizzes included) and
the package is fetched as a user would download it. The package is read back with the
standard library's XML parser and checked against the CC 1.1 profile rules that importers
enforce (the schematron rules written into the CC 1.1 XSDs): namespaces and schema version,
one rooted organization in lesson order, resource types, files listed and present,
identifiers unique and resolving, and each quiz a QTI 1.2.1 assessment whose scoring picks
exactly the answer the API holds. Every test runs on both engines.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from coursegen.domain import QuizQuestion
from coursegen.export import cc
from coursegen.export.document import ExportCourse, ExportLesson
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Running

CP = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
LOM_MANIFEST = "http://ltsc.ieee.org/xsd/imsccv1p1/LOM/manifest"
LOM_RESOURCE = "http://ltsc.ieee.org/xsd/imsccv1p1/LOM/resource"
QTI = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PROFILE = "http://www.imsglobal.org/profile/cc/ccv1p1"
WEBCONTENT = "webcontent"
ASSESSMENT = "imsqti_xmlv1p2/imscc_xmlv1p1/assessment"
NS = {"cp": CP, "lomimscc": LOM_MANIFEST, "qti": QTI}

# -- making and fetching courses --------------------------------------------------------------


async def finished_course(running: Running, lessons: int = 3) -> dict[str, Any]:
    """A course written to the end through the API, as the API then shows it."""
    created = await running.generate(topic="Sourdough baking", lessons=lessons)
    await running.settle(created["job_id"])
    return await course_with_lessons(running, created["course_id"])


async def course_with_lessons(running: Running, course_id: int) -> dict[str, Any]:
    """The course and each of its lessons in full (text and quiz), in course order."""
    response = await running.http.get(f"/api/courses/{course_id}")
    assert response.status_code == 200, response.text
    course: dict[str, Any] = response.json()
    full = []
    for summary in course["lessons"]:
        lesson = await running.http.get(f"/api/lessons/{summary['id']}")
        assert lesson.status_code == 200, lesson.text
        full.append(lesson.json())
    course["lessons"] = full
    return course


async def export_cc(running: Running, course_id: int) -> bytes:
    response = await running.http.get(f"/api/courses/{course_id}/export/cc")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('.imscc"')
    return response.content


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert len(names) == len(set(names)), names
        return {name: archive.read(name) for name in names}


# -- reading a package ------------------------------------------------------------------------


@dataclass
class Package:
    files: dict[str, bytes]
    manifest: ET.Element
    resources: dict[str, ET.Element]  # by identifier

    def lesson_folders(self) -> list[ET.Element]:
        [organization] = self.manifest.findall("cp:organizations/cp:organization", NS)
        [root] = organization.findall("cp:item", NS)
        return root.findall("cp:item", NS)

    def resource_file(self, item: ET.Element) -> tuple[str, str]:
        """The type of the resource an item points at, and its one file's path."""
        resource = self.resources[item.attrib["identifierref"]]
        [file] = resource.findall("cp:file", NS)
        return resource.attrib["type"], file.attrib["href"]


def read_package(data: bytes) -> Package:
    """The package, checked against the CC 1.1 manifest rules as it is read."""
    files = unzip(data)
    assert "imsmanifest.xml" in files
    manifest = ET.fromstring(files["imsmanifest.xml"])  # well-formed, or this raises
    assert manifest.tag == f"{{{CP}}}manifest"
    assert files["imsmanifest.xml"].startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    locations = manifest.attrib[f"{{{XSI}}}schemaLocation"].split()
    assert dict(zip(locations[::2], locations[1::2], strict=True)) == {
        CP: f"{PROFILE}/ccv1p1_imscp_v1p2_v1p0.xsd",
        LOM_RESOURCE: f"{PROFILE}/LOM/ccv1p1_lomresource_v1p0.xsd",
        LOM_MANIFEST: f"{PROFILE}/LOM/ccv1p1_lommanifest_v1p0.xsd",
    }
    # The manifest's children in the order the CP profile's sequence has them.
    assert [child.tag for child in manifest] == [
        f"{{{CP}}}metadata", f"{{{CP}}}organizations", f"{{{CP}}}resources",
    ]  # fmt: skip
    assert manifest.findtext("cp:metadata/cp:schema", namespaces=NS) == "IMS Common Cartridge"
    assert manifest.findtext("cp:metadata/cp:schemaversion", namespaces=NS) == "1.1.0"

    assert manifest.find("cp:metadata/lomimscc:lom", NS) is not None  # required by the XSD

    # Identifiers are xsd:IDs: unique in the manifest, and names (NCNames).
    identifiers = [e.attrib["identifier"] for e in manifest.iter() if "identifier" in e.attrib]
    assert len(identifiers) == len(set(identifiers)), identifiers
    assert all(re.fullmatch(r"[A-Za-z_][\w.-]*", i) for i in identifiers), identifiers
    resources = {
        r.attrib["identifier"]: r for r in manifest.iterfind("cp:resources/cp:resource", NS)
    }
    for element in manifest.iter():
        if "identifierref" in element.attrib:
            assert element.attrib["identifierref"] in resources, element.attrib

    [organization] = manifest.findall("cp:organizations/cp:organization", NS)
    assert organization.attrib["structure"] == "rooted-hierarchy"
    [root] = organization.findall("cp:item", NS)
    assert "identifierref" not in root.attrib and root.find("cp:title", NS) is None
    for item in root.iter(f"{{{CP}}}item"):
        if item is root:
            continue
        assert (item.findtext("cp:title", namespaces=NS) or "").strip(), item.attrib
        if "identifierref" in item.attrib:  # a learning object's item holds no items
            assert item.find("cp:item", NS) is None, item.attrib

    listed: set[str] = set()
    for identifier, resource in resources.items():
        hrefs = [f.attrib["href"] for f in resource.findall("cp:file", NS)]
        assert len(hrefs) == len(set(hrefs)), identifier
        listed.update(hrefs)
        kind = resource.attrib["type"]
        assert kind in (WEBCONTENT, ASSESSMENT), kind
        if kind == WEBCONTENT:  # an item points at it: it needs an href, one of its files
            assert resource.attrib["href"] in hrefs, identifier
        else:  # an assessment: exactly one file, no href
            assert len(hrefs) == 1 and "href" not in resource.attrib, identifier
        assert resource.find("cp:dependency", NS) is None, identifier
    # Every file in the zip is listed, and every listed file is in the zip.
    assert listed == set(files) - {"imsmanifest.xml"}
    return Package(files, manifest, resources)


class Markup(HTMLParser):
    """An HTML page or fragment as a browser would see it: its tags and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.title: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        (self.title if self._in_title else self.text).append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def parse_html(markup: str) -> Markup:
    parsed = Markup()
    parsed.feed(markup)
    parsed.close()
    return parsed


# Elements that run code, load something, or take over the page.
ACTIVE_TAGS = {
    "script", "iframe", "frame", "object", "embed", "img", "image", "svg", "math", "style",
    "link", "base", "form", "input", "button", "video", "audio", "source", "picture", "applet",
    "template", "noscript",
}  # fmt: skip


def inert_problems(parsed: Markup) -> list[str]:
    """What in a page could run or load from outside (empty when nothing can)."""
    problems = []
    for tag, attrs in parsed.tags:
        if tag in ACTIVE_TAGS:
            problems.append(f"<{tag}>")
        if tag == "meta" and set(attrs) != {"charset"}:
            problems.append(f"<meta {attrs}>")
        for name, value in attrs.items():
            if name.startswith("on") or name in ("style", "src", "srcset", "action", "data"):
                problems.append(f"<{tag} {name}={value!r}>")
            if name == "href":
                scheme = "".join((value or "").split()).lower().split(":", 1)[0]
                if tag != "a" or scheme not in ("http", "https", "mailto"):
                    problems.append(f"<{tag} href={value!r}>")
                elif "noopener" not in (attrs.get("rel") or ""):
                    problems.append(f"<a href={value!r}> without rel=noopener")
    return problems


def quiz_from_qti(data: bytes) -> tuple[ET.Element, list[dict[str, Any]]]:
    """The assessment, and its questions as the API shapes a quiz, read from what an
    importer scores: the correct answer is the response label that resprocessing's
    `varequal` gives SCORE 100 for, the explanation the itemfeedback it displays."""
    root = ET.fromstring(data)  # well-formed, or this raises
    assert root.tag == f"{{{QTI}}}questestinterop"
    assert root.attrib[f"{{{XSI}}}schemaLocation"].split() == [
        QTI, f"{PROFILE}/ccv1p1_qtiasiv1p2p1_v1p0.xsd",
    ]  # fmt: skip
    [assessment] = root.findall("qti:assessment", NS)
    assert assessment.attrib["title"].strip()
    fields = {
        f.findtext("qti:fieldlabel", namespaces=NS): f.findtext("qti:fieldentry", namespaces=NS)
        for f in assessment.iterfind("qti:qtimetadata/qti:qtimetadatafield", NS)
    }
    assert fields["cc_profile"] == "cc.exam.v0p1"
    assert fields["qmd_assessmenttype"] == "Examination"
    assert fields["cc_maxattempts"] in {"1", "2", "3", "4", "5", "unlimited"}
    # Children in the order the XSD's sequences have them.
    assert tags(assessment) == ["qtimetadata", "section"]
    [section] = assessment.findall("qti:section", NS)
    items = section.findall("qti:item", NS)
    idents = [item.attrib["ident"] for item in items]
    assert len(idents) == len(set(idents)) > 0
    return assessment, [question_from_item(item) for item in items]


def tags(element: ET.Element) -> list[str]:
    """The local names of an element's children, in document order."""
    return [child.tag.split("}", 1)[1] for child in element]


def question_from_item(item: ET.Element) -> dict[str, Any]:
    assert tags(item) in (
        ["itemmetadata", "presentation", "resprocessing"],
        ["itemmetadata", "presentation", "resprocessing", "itemfeedback"],
    )
    metadata = item.findall("qti:itemmetadata/qti:qtimetadata/qti:qtimetadatafield", NS)
    assert [
        (f.findtext("qti:fieldlabel", namespaces=NS), f.findtext("qti:fieldentry", namespaces=NS))
        for f in metadata
    ] == [("cc_profile", "cc.multiple_choice.v0p1")]
    [presentation] = item.findall("qti:presentation", NS)
    [lid] = presentation.findall("qti:response_lid", NS)
    assert lid.attrib["rcardinality"] == "Single"
    labels = lid.findall("qti:render_choice/qti:response_label", NS)
    choices = {label.attrib["ident"]: mattext(label) for label in labels}
    assert len(choices) == len(labels)

    [processing] = item.findall("qti:resprocessing", NS)
    assert tags(processing)[0] == "outcomes"
    for condition in processing.findall("qti:respcondition", NS):
        order = tags(condition)
        assert order[0] == "conditionvar" and order.count("conditionvar") == 1
        assert order == sorted(order, key=["conditionvar", "setvar", "displayfeedback"].index)
    [decvar] = processing.findall("qti:outcomes/qti:decvar", NS)
    assert decvar.attrib == {
        "varname": "SCORE", "vartype": "Decimal", "minvalue": "0", "maxvalue": "100",
    }  # fmt: skip
    scoring = [
        condition
        for condition in processing.iterfind("qti:respcondition", NS)
        if condition.findtext("qti:setvar[@varname='SCORE']", namespaces=NS) == "100"
    ]
    [right] = scoring
    [setvar] = right.findall("qti:setvar", NS)
    assert setvar.attrib["action"] == "Set"
    [varequal] = right.findall("qti:conditionvar/qti:varequal", NS)
    assert varequal.attrib["respident"] == lid.attrib["ident"]
    feedback_ids = [
        shown.attrib["linkrefid"]
        for shown in processing.iterfind("qti:respcondition/qti:displayfeedback", NS)
    ]
    feedbacks = {f.attrib["ident"]: f for f in item.findall("qti:itemfeedback", NS)}
    assert set(feedback_ids) == set(feedbacks)  # each shown feedback exists, each exists shown
    explanation = " ".join(
        mattext(flow)
        for ident in feedback_ids
        for flow in feedbacks[ident].findall("qti:flow_mat", NS)
    )
    return {
        "question": mattext(presentation),
        "choices": list(choices.values()),
        "answer": list(choices).index(varequal.text or ""),
        "explanation": explanation,
    }


def mattext(parent: ET.Element) -> str:
    """The text a reader sees of `material/mattext`: HTML when texttype says so."""
    [text] = parent.findall("qti:material/qti:mattext", NS)
    if text.attrib.get("texttype") != "text/html":
        return text.text or ""
    parsed = parse_html(text.text or "")
    assert inert_problems(parsed) == [], parsed.tags
    assert [tag for tag, _ in parsed.tags] in ([], ["p"]), parsed.tags
    return "".join(parsed.text)


def page_of(package: Package, folder: ET.Element) -> tuple[Markup, str]:
    [page_item, *_] = folder.findall("cp:item", NS)
    kind, path = package.resource_file(page_item)
    assert kind == WEBCONTENT and path.endswith(".html")
    markup = package.files[path].decode()
    assert markup.startswith("<!DOCTYPE html>")
    parsed = parse_html(markup)
    assert ("meta", {"charset": "utf-8"}) in parsed.tags
    assert inert_problems(parsed) == [], inert_problems(parsed)
    return parsed, markup


# -- tests ------------------------------------------------------------------------------------


async def test_the_package_follows_cc11_and_every_quiz_scores_the_answer_the_api_holds(
    running: Running,
) -> None:
    course = await finished_course(running, lessons=3)
    assert course["job"]["status"] == "complete"
    data = await export_cc(running, course["id"])
    package = read_package(data)

    title = package.manifest.findtext(
        "cp:metadata/lomimscc:lom/lomimscc:general/lomimscc:title/lomimscc:string", namespaces=NS
    )
    assert title == course["title"]
    folders = package.lesson_folders()
    assert [f.findtext("cp:title", namespaces=NS) for f in folders] == [
        f"{number}. {lesson['title']}" for number, lesson in enumerate(course["lessons"], 1)
    ]
    kinds = {resource.attrib["type"] for resource in package.resources.values()}
    assert kinds == {WEBCONTENT, ASSESSMENT}

    for number, (folder, lesson) in enumerate(zip(folders, course["lessons"], strict=True), 1):
        assert lesson["content_status"] == "complete" and lesson["quiz_status"] == "complete"
        page_item, quiz_item = folder.findall("cp:item", NS)
        assert page_item.findtext("cp:title", namespaces=NS) == lesson["title"]
        parsed, _ = page_of(package, folder)
        assert "".join(parsed.title) == f"Lesson {number}: {lesson['title']}"
        for line in lesson["content"].splitlines():  # every line of the text is on the page
            words = " ".join(line.lstrip("#-* ").split())
            assert words in parsed.plain, (words, parsed.plain)

        kind, path = package.resource_file(quiz_item)
        assert kind == ASSESSMENT and path.endswith(".xml")
        assessment, questions = quiz_from_qti(package.files[path])
        assert assessment.attrib["title"] == f"Quiz: {lesson['title']}"
        # Question text, choices in order, the scored answer and the explanation, exactly.
        assert questions == lesson["quiz"]
        assert len(questions) >= 3 and all(q["explanation"] for q in questions)

    # Reproducible: the same course gives the same bytes, with fixed times in the zip.
    assert await export_cc(running, course["id"]) == data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.namelist()[0] == "imsmanifest.xml"


HOSTILE_TITLE = "\"Quoted\" & 'single' </title><script>alert('title')</script> ]]>"
HOSTILE_TEXT = """# Kneading

<script>alert('text')</script>

Before <img src="http://tracker.example/pixel.png" onerror="alert(1)"> after.

<iframe src="https://evil.example/frame"></iframe>

[run me](javascript:alert(1)) and [the flour guide](https://example.org/flour)

![tracker](http://tracker.example/image.png)

Entities &lt;b&gt; &amp; ]]> </title> <a href="http://evil.example" onclick="x()">raw</a>
"""
HOSTILE_QUIZ = {
    "questions": [
        {
            "question": "<script>alert('q')</script> Which is <b>right</b> & ]]>?",
            "choices": [
                "<img src=http://tracker.example/a.png onerror=alert(1)>",
                "&amp; stays &amp;",
                '</mattext></material> ]]> "quoted"',
            ],
            "answer": 2,
            "explanation": '<a href="javascript:alert(1)">because</a> ]]> &lt;',
        },
        {
            "question": "Two choices only?",
            "choices": ["Yes", "<iframe src=https://evil.example/>"],
            "answer": 1,
            "explanation": "Plain.",
        },
        {
            "question": "Third?",
            "choices": ["a", "b", "c", "d"],
            "answer": 0,
            "explanation": "First.",
        },
    ]
}


async def test_hostile_lesson_text_titles_and_quizzes_stay_inert_text(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.quiz = HOSTILE_QUIZ
    created = await running.generate(topic="Sourdough baking", lessons=2)
    await running.settle(created["job_id"])
    lesson_id = created["course"]["lessons"][0]["id"]
    response = await running.http.patch(
        f"/api/lessons/{lesson_id}",
        json={"title": HOSTILE_TITLE, "description": HOSTILE_TITLE, "content": HOSTILE_TEXT},
    )
    assert response.status_code == 200, response.text
    await running.settle(created["job_id"])  # the new text gets its (hostile) quiz
    course = await course_with_lessons(running, created["course_id"])
    assert course["lessons"][0]["title"] == HOSTILE_TITLE
    assert course["lessons"][0]["quiz"] == HOSTILE_QUIZ["questions"]

    data = await export_cc(running, course["id"])
    package = read_package(data)  # still well-formed XML, every rule holding
    folders = package.lesson_folders()
    # Titles are text: exactly what the API holds, in the manifest and the page.
    assert folders[0].findtext("cp:title", namespaces=NS) == f"1. {HOSTILE_TITLE}"
    parsed, markup = page_of(package, folders[0])  # nothing active on the page
    assert "".join(parsed.title) == f"Lesson 1: {HOSTILE_TITLE}"
    assert "alert('title')" in parsed.plain  # shown as text, not run
    links = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert links == ["https://example.org/flour"]  # the lesson's own link, nothing else
    assert "<script" not in markup and "<img" not in markup and "<iframe" not in markup

    for folder, lesson in zip(folders, course["lessons"], strict=True):
        page_of(package, folder)
        _, path = package.resource_file(folder.findall("cp:item", NS)[1])
        qti = package.files[path]
        for element in ET.fromstring(qti).iter():  # no markup of the quiz became XML
            assert element.tag.startswith(f"{{{QTI}}}"), element.tag
            assert element.tag.split("}")[1] not in ACTIVE_TAGS | {"a", "b"}, element.tag
        _, questions = quiz_from_qti(qti)  # each mattext is inert HTML holding the text
        assert questions == lesson["quiz"] == HOSTILE_QUIZ["questions"]


async def test_lessons_not_written_are_listed_as_not_written_yet(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", match="Lesson 2", status=500)
    created = await running.generate(topic="Sourdough baking", lessons=3)
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == ("error", 2, 1)
    course = await course_with_lessons(running, created["course_id"])
    statuses = [lesson["content_status"] for lesson in course["lessons"]]
    assert statuses == ["complete", "error", "complete"]

    package = read_package(await export_cc(running, course["id"]))
    folders = package.lesson_folders()
    titles = [f.findtext("cp:title", namespaces=NS) for f in folders]
    first, second, third = (lesson["title"] for lesson in course["lessons"])
    assert titles == [f"1. {first}", f"2. {second} (not written yet)", f"3. {third}"]
    # The unwritten lesson has a page saying so, and no quiz.
    [only_page] = folders[1].findall("cp:item", NS)
    parsed, _ = page_of(package, folders[1])
    assert "This lesson is not written yet." in parsed.plain
    assert "".join(parsed.title) == f"Lesson 2: {second}"
    assert package.resource_file(only_page)[0] == WEBCONTENT
    for folder, lesson in ((folders[0], course["lessons"][0]), (folders[2], course["lessons"][2])):
        _, quiz_item = folder.findall("cp:item", NS)
        _, questions = quiz_from_qti(package.files[package.resource_file(quiz_item)[1]])
        assert questions == lesson["quiz"]
    assessments = [r for r in package.resources.values() if r.attrib["type"] == ASSESSMENT]
    assert len(assessments) == 2


def test_identifiers_are_the_courses_own_and_text_xml_cannot_carry_is_dropped() -> None:
    """Two courses imported into one LMS course must not overwrite each other's pages and
    quizzes (importers key what they import by the manifest's identifiers); characters
    XML 1.0 cannot hold at all are dropped rather than breaking the package."""
    question = QuizQuestion("Which\x0b one?", ("this\x1f", "that"), 1, "Because\x00.")
    lesson = ExportLesson(
        1, "Tabs\x0b and bells\x07", "", "Text", "<p>Text</p>", (question,), "01-tabs"
    )

    def course(course_id: int, created_at: str) -> ExportCourse:
        return ExportCourse(
            course_id, "Control\x0c", "t", "", "beginner", "English", created_at, (lesson,), "c"
        )

    one, same, other = (
        read_package(cc.build(course(7, "2026-12-01T10:00:00Z"))),
        read_package(cc.build(course(7, "2026-12-01T10:00:00Z"))),
        read_package(cc.build(course(8, "2026-12-01T10:00:01Z"))),
    )
    assert one.files == same.files
    assert set(one.resources).isdisjoint(other.resources)
    [folder] = one.lesson_folders()
    assert folder.findtext("cp:title", namespaces=NS) == "1. Tabs and bells"
    [item] = folder.findall("cp:item", NS)[1:]
    _, questions = quiz_from_qti(one.files[one.resource_file(item)[1]])
    assert questions == [
        {
            "question": "Which one?",
            "choices": ["this", "that"],
            "answer": 1,
            "explanation": "Because.",
        }
    ]
