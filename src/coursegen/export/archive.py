"""Zip files that are byte-identical for the same content: testable and cacheable."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

# The earliest time a zip can hold; any fixed time would do.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def reproducible_zip(files: Sequence[tuple[str, bytes | str]]) -> bytes:
    """A zip of `files` in the order given, with fixed times and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permission bits below mean what they say
            info.external_attr = 0o644 << 16
            archive.writestr(info, data.encode() if isinstance(data, str) else data)
    return buffer.getvalue()
