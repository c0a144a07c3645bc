"""`cc`: an IMS Common Cartridge 1.1 package (.imscc), the version every major LMS imports.

Canvas, Moodle, Blackboard and D2L read the same shape: `imsmanifest.xml` with one
organization, one `webcontent` HTML page per lesson and each quiz as a QTI 1.2.1
assessment of the CC profile, which they turn into a native quiz.

The organization has one folder item per lesson holding its page and its quiz: in the
CC 1.1 profile an item that points at a resource may not contain items, and importers
make a module (Canvas) or a section (Moodle) of each top-level folder, as Canvas's own
exports do. Identifiers start with a prefix derived from the course, so two courses
imported into one LMS course do not overwrite each other's pages (importers key their
content by these identifiers).
"""

from __future__ import annotations

import hashlib
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from coursegen.domain import QuizQuestion
from coursegen.export.archive import reproducible_zip
from coursegen.export.document import ExportCourse, ExportLesson, lesson_body

CP_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
LOM_RESOURCE_NS = "http://ltsc.ieee.org/xsd/imsccv1p1/LOM/resource"
LOM_MANIFEST_NS = "http://ltsc.ieee.org/xsd/imsccv1p1/LOM/manifest"
QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_PROFILE = "http://www.imsglobal.org/profile/cc/ccv1p1"
MANIFEST_SCHEMAS = (
    (CP_NS, f"{_PROFILE}/ccv1p1_imscp_v1p2_v1p0.xsd"),
    (LOM_RESOURCE_NS, f"{_PROFILE}/LOM/ccv1p1_lomresource_v1p0.xsd"),
    (LOM_MANIFEST_NS, f"{_PROFILE}/LOM/ccv1p1_lommanifest_v1p0.xsd"),
)
QTI_SCHEMA = (QTI_NS, f"{_PROFILE}/ccv1p1_qtiasiv1p2p1_v1p0.xsd")

WEBCONTENT = "webcontent"
ASSESSMENT = "imsqti_xmlv1p2/imscc_xmlv1p1/assessment"
NOT_WRITTEN = "not written yet"
RESPONSE = "response1"  # the one response of a single-choice item

# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def build(course: ExportCourse) -> bytes:
    prefix = _prefix(course)
    files: list[tuple[str, bytes | str]] = [("imsmanifest.xml", manifest(course, prefix))]
    for lesson in course.lessons:
        files.append((page_path(lesson), page(lesson)))
        if lesson.quiz:
            files.append((quiz_path(lesson), assessment(lesson, prefix)))
    return reproducible_zip(files)


def page_path(lesson: ExportLesson) -> str:
    return f"lessons/{lesson.slug}.html"


def quiz_path(lesson: ExportLesson) -> str:
    return f"quizzes/{lesson.slug}.xml"


def manifest(course: ExportCourse, prefix: str) -> str:
    root = ET.Element(
        "manifest",
        {
            "identifier": f"{prefix}_manifest",
            "xmlns": CP_NS,
            "xmlns:lom": LOM_RESOURCE_NS,
            "xmlns:lomimscc": LOM_MANIFEST_NS,
            "xmlns:xsi": XSI_NS,
            "xsi:schemaLocation": " ".join(f"{ns} {xsd}" for ns, xsd in MANIFEST_SCHEMAS),
        },
    )
    metadata = ET.SubElement(root, "metadata")
    _text(metadata, "schema", "IMS Common Cartridge")
    _text(metadata, "schemaversion", "1.1.0")
    general = ET.SubElement(ET.SubElement(metadata, "lomimscc:lom"), "lomimscc:general")
    _text(ET.SubElement(general, "lomimscc:title"), "lomimscc:string", course.title)
    if course.description:
        description = ET.SubElement(general, "lomimscc:description")
        _text(description, "lomimscc:string", course.description)

    organization = ET.SubElement(
        ET.SubElement(root, "organizations"),
        "organization",
        {"identifier": f"{prefix}_org", "structure": "rooted-hierarchy"},
    )
    _text(organization, "title", course.title)
    top = ET.SubElement(organization, "item", {"identifier": f"{prefix}_root"})
    resources = ET.SubElement(root, "resources")
    for lesson in course.lessons:
        ids = f"{prefix}_{lesson.number}"
        title = f"{lesson.number}. {_line(lesson.title)}"
        folder = ET.SubElement(top, "item", {"identifier": f"{ids}_lesson"})
        _text(folder, "title", title if lesson.written else f"{title} ({NOT_WRITTEN})")
        _item(folder, f"{ids}_page", f"{ids}_page_res", _line(lesson.title))
        _resource(resources, f"{ids}_page_res", WEBCONTENT, page_path(lesson), href=True)
        if lesson.quiz:
            _item(folder, f"{ids}_quiz", f"{ids}_quiz_res", f"Quiz: {_line(lesson.title)}")
            # An assessment's resource names its one file and has no href (CC 1.1 rule 3c).
            _resource(resources, f"{ids}_quiz_res", ASSESSMENT, quiz_path(lesson), href=False)
    return _xml(root)


def page(lesson: ExportLesson) -> str:
    """A complete HTML page: the sanitised lesson, nothing that runs or loads."""
    title = html.escape(f"Lesson {lesson.number}: {_line(lesson.title)}")
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{title}</title></head>",
        f"<body><h1>{title}</h1>",
    ]
    if lesson.description:
        parts.append(f"<p><em>{html.escape(_line(lesson.description))}</em></p>")
    if lesson.written:
        parts.append(lesson_body(lesson))
    else:
        parts.append(f"<p>This lesson is {NOT_WRITTEN}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def assessment(lesson: ExportLesson, prefix: str) -> str:
    """The lesson's quiz as a QTI 1.2.1 assessment of the CC 1.1 profile (`cc.exam.v0p1`)."""
    ident = f"{prefix}_{lesson.number}_quiz"
    root = ET.Element(
        "questestinterop",
        {"xmlns": QTI_NS, "xmlns:xsi": XSI_NS, "xsi:schemaLocation": " ".join(QTI_SCHEMA)},
    )
    quiz = ET.SubElement(
        root, "assessment", {"ident": ident, "title": _clean(f"Quiz: {_line(lesson.title)}")}
    )
    _fields(
        ET.SubElement(quiz, "qtimetadata"),
        [
            ("cc_profile", "cc.exam.v0p1"),
            ("qmd_assessmenttype", "Examination"),
            ("qmd_scoretype", "Percentage"),
            ("qmd_feedbackpermitted", "Yes"),
            ("cc_maxattempts", "unlimited"),  # a quiz to learn from, not an exam to pass
        ],
    )
    section = ET.SubElement(quiz, "section", {"ident": f"{ident}_section"})
    for number, question in enumerate(lesson.quiz, start=1):
        _question(section, f"{ident}_{number}", number, question)
    return _xml(root)


def _question(section: ET.Element, ident: str, number: int, question: QuizQuestion) -> None:
    # Two-choice questions stay multiple choice: the profile's true/false type would make
    # importers label the choices True and False (the profile asks for three choices or
    # more; importers take two).
    item = ET.SubElement(section, "item", {"ident": ident, "title": f"Question {number}"})
    _fields(
        ET.SubElement(ET.SubElement(item, "itemmetadata"), "qtimetadata"),
        [("cc_profile", "cc.multiple_choice.v0p1")],
    )
    presentation = ET.SubElement(item, "presentation")
    _material(presentation, f"<p>{_html_text(question.question)}</p>")
    choices = ET.SubElement(
        ET.SubElement(presentation, "response_lid", {"ident": RESPONSE, "rcardinality": "Single"}),
        "render_choice",
    )
    for index, choice in enumerate(question.choices):
        label = ET.SubElement(choices, "response_label", {"ident": _choice_id(ident, index)})
        _material(label, _html_text(choice))

    processing = ET.SubElement(item, "resprocessing")
    ET.SubElement(
        ET.SubElement(processing, "outcomes"),
        "decvar",
        {"varname": "SCORE", "vartype": "Decimal", "minvalue": "0", "maxvalue": "100"},
    )
    feedback_id = f"{ident}_feedback"
    if question.explanation:
        # Shown whatever the answer (`other`): Moodle imports it as the general feedback.
        always = ET.SubElement(processing, "respcondition", {"continue": "Yes"})
        ET.SubElement(ET.SubElement(always, "conditionvar"), "other")
        ET.SubElement(
            always, "displayfeedback", {"feedbacktype": "Response", "linkrefid": feedback_id}
        )
    right = ET.SubElement(processing, "respcondition", {"continue": "No"})
    _text(
        ET.SubElement(right, "conditionvar"),
        "varequal",
        _choice_id(ident, question.answer),
        {"respident": RESPONSE},
    )
    _text(right, "setvar", "100", {"action": "Set", "varname": "SCORE"})
    if question.explanation:
        feedback = ET.SubElement(item, "itemfeedback", {"ident": feedback_id})
        _material(ET.SubElement(feedback, "flow_mat"), f"<p>{_html_text(question.explanation)}</p>")


def _choice_id(item_ident: str, index: int) -> str:
    return f"{item_ident}_{index + 1}"


def _prefix(course: ExportCourse) -> str:
    """The same for every export of one course, different for another course."""
    seed = f"{course.id}|{course.created_at}".encode()
    return "cg" + hashlib.sha256(seed).hexdigest()[:10]


def _item(parent: ET.Element, identifier: str, resource: str, title: str) -> None:
    item = ET.SubElement(parent, "item", {"identifier": identifier, "identifierref": resource})
    _text(item, "title", title)


def _resource(parent: ET.Element, identifier: str, kind: str, path: str, *, href: bool) -> None:
    attributes = {"identifier": identifier, "type": kind} | ({"href": path} if href else {})
    resource = ET.SubElement(parent, "resource", attributes)
    ET.SubElement(resource, "file", {"href": path})


def _fields(metadata: ET.Element, fields: Iterable[tuple[str, str]]) -> None:
    for label, entry in fields:
        field = ET.SubElement(metadata, "qtimetadatafield")
        _text(field, "fieldlabel", label)
        _text(field, "fieldentry", entry)


def _material(parent: ET.Element, markup: str) -> None:
    """HTML in a `mattext`: importers show it as HTML, so model text goes in escaped."""
    _text(ET.SubElement(parent, "material"), "mattext", markup, {"texttype": "text/html"})


def _text(
    parent: ET.Element, tag: str, text: str, attributes: dict[str, str] | None = None
) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes or {})
    element.text = _clean(text)
    return element


def _html_text(text: str) -> str:
    return html.escape(text.strip(), quote=False)


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _line(text: str) -> str:
    return " ".join(text.split())


def _xml(root: ET.Element) -> str:
    # The tags carry their prefixes literally and the namespaces are declared as plain
    # attributes: the output is namespaced XML without ElementTree's process-wide prefix
    # registry, and stays the same bytes for the same course.
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
