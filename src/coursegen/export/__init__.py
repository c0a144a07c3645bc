"""Exports (SPEC section 10): the course as files another program can read.

Every format is a pure function from an `ExportCourse` to bytes: the same course gives the
same bytes, and nothing in a package runs model output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from coursegen.domain import JobStatus
from coursegen.errors import Conflict, NotFound
from coursegen.export import cc, html, markdown, scorm
from coursegen.export.document import ExportCourse, export_document
from coursegen.store import Store

__all__ = ["FORMATS", "Export", "ExportCourse", "build_export", "course_export"]


@dataclass(frozen=True, slots=True)
class Format:
    build: Callable[[ExportCourse], bytes]
    media_type: str
    suffix: str  # added to the course's slug to make the download's file name


FORMATS: dict[str, Format] = {
    "markdown": Format(markdown.build, "application/zip", "-markdown.zip"),
    "html": Format(html.build, "text/html; charset=utf-8", ".html"),
    "scorm12": Format(scorm.build, "application/zip", "-scorm12.zip"),
    "cc": Format(cc.build, "application/zip", ".imscc"),
}


@dataclass(frozen=True, slots=True)
class Export:
    filename: str
    media_type: str
    body: bytes


def build_export(course: ExportCourse, format_name: str) -> Export:
    """The course in one of `FORMATS` (the caller has checked the name)."""
    chosen = FORMATS[format_name]
    return Export(course.slug + chosen.suffix, chosen.media_type, chosen.build(course))


async def course_export(store: Store, course_id: int, format_name: str) -> Export:
    """A stored course in a format; 404 for an unknown course or format, 409 while written."""
    if format_name not in FORMATS:
        raise NotFound(f"no export format {format_name!r}; choose one of {', '.join(FORMATS)}")
    found = await store.course_texts(course_id)
    if found is None:
        raise NotFound("no such course")
    course, lessons = found
    if course.job is not None and course.job.status is JobStatus.RUNNING:
        raise Conflict(
            "the course is still being written; export it when its job has ended "
            "(or cancel the job)"
        )
    # Rendering and compressing a long course takes tens of milliseconds of CPU.
    return await asyncio.to_thread(build_export, export_document(course, lessons), format_name)
