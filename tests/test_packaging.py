"""A built wheel carries schema.sql and static/, runs from them, and ships only the service."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_schema_and_page_and_uses_them(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("coursegen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "coursegen/schema.sql" in names
    assert "coursegen/static/index.html" in names
    assert (ROOT / "schema.sql").read_bytes() == zipfile.ZipFile(wheel).read("coursegen/schema.sql")
    # The test double and the benchmark are development tools (src/coursegen_dev).
    assert [n for n in names if "fake" in n or "bench" in n or "coursegen_dev" in n] == []
    assert {n.split("/")[0] for n in names} == {"coursegen", "coursegen-0.1.0.dist-info"}
    print(f"wheel: {wheel.stat().st_size:,} bytes, {len(names)} files")

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # Run from the unpacked wheel, not the source tree, and serve one page and one course.
    # The dev package stays importable from this checkout, so it is blocked outright.
    script = """
import asyncio, pathlib, sys
sys.modules["coursegen_dev"] = None  # the service must run without the dev tools
import httpx
from asgi_lifespan import LifespanManager
import coursegen
from coursegen.app import create_app
from coursegen.settings import Settings

assert pathlib.Path(coursegen.__file__).is_relative_to(sys.argv[1]), coursegen.__file__

async def main():
    app = create_app(Settings(db=sys.argv[2], demo_delay=0))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            page = await http.get("/")
            assert page.status_code == 200 and "<" in page.text, page.status_code
            made = await http.post("/api/courses/generate", json={"topic": "Wheels"})
            assert made.status_code == 201, made.text

asyncio.run(main())
import coursegen.cli, coursegen.export, coursegen.dbcopy
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    ran = subprocess.run(
        [sys.executable, "-c", script, str(unpacked), str(tmp_path / "wheel.db")],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ok"


def test_the_console_script_and_module_entry_point_exist() -> None:
    for command in ([sys.executable, "-m", "coursegen", "--help"],
                    [str(Path(sys.executable).with_name("coursegen")), "--help"]):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "serve" in result.stdout


def test_the_service_imports_nothing_of_the_dev_tools_or_the_tests() -> None:
    found = []
    for path in sorted((ROOT / "src" / "coursegen").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("coursegen_dev", "tests")
            ]
    assert found == []
