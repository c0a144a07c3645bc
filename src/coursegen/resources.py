"""Files the package carries besides code.

schema.sql, schema_postgres.sql and static/ live at the top of the repository; src/coursegen holds
symbolic links to them, so an editable install and a built wheel (where the
links become real files) find them at the same place.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def schema_path() -> Path:
    return _PACKAGE / "schema.sql"


def postgres_schema_path() -> Path:
    return _PACKAGE / "schema_postgres.sql"


def static_dir() -> Path:
    return _PACKAGE / "static"
