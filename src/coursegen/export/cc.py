"""Placeholder: being written."""

from __future__ import annotations

from coursegen.export.document import ExportCourse


def build(course: ExportCourse) -> bytes:
    raise NotImplementedError("cc export")
