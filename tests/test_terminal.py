"""The terminal client: `coursegen generate`, `list` and `export` as a person runs them.

Each command runs as a child process: under a real pseudo-terminal (pexpect) for the
live screen and Ctrl-C, with pipes for the plain output. The service is a real uvicorn
in the test's loop (so every pexpect wait goes through a thread), or, without
--server, the one the command serves in its own process.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sqlite3
import sys
import zipfile
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from coursegen.cli import main
from coursegen.domain import CourseOutline
from coursegen.providers.anthropic_api import AnthropicProvider
from coursegen.providers.base import CallSink, LessonResult, TextSink
from coursegen.settings import SPECS, Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY, Live
from tests.serverproc import free_port

StartLive = Callable[..., Awaitable[Live]]
SINGLE = pytest.mark.parametrize("engine", ["sqlite"])  # the engine matters to one test only
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
EXIT_WITHIN = 60


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a command: none of the shell's coursegen or SDK variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEGEN_", "ANTHROPIC_"))}
    env.update(PYTHONUNBUFFERED="1", TERM="xterm-256color", **extra)
    # pytest-xdist's workers export COLUMNS=80 and LINES=24, which rich would believe over
    # the pseudo-terminal's own size: the screen is the size the terminal says it is.
    for name in ("NO_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    return env


async def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run `coursegen ARGS` with its output piped (not a terminal)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coursegen", *args,
        cwd=cwd, env=env or cli_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(EXIT_WITHIN):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


class Terminal:
    """`coursegen ARGS` under a pseudo-terminal of 80 columns, the size most terminals open
    at; waits run in a thread, off the loop that serves the service."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable, ["-m", "coursegen", *args], cwd=str(cwd), env=env or cli_env(),
            dimensions=(24, 80), encoding="utf-8", timeout=EXIT_WITHIN,
        )  # fmt: skip
        self.child.logfile_read = self.transcript

    async def expect(self, pattern: str) -> None:
        await asyncio.to_thread(self.child.expect, pattern)

    async def exit_status(self) -> int:
        await asyncio.to_thread(self.child.expect, pexpect.EOF)
        await asyncio.to_thread(self.child.close)
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}"
        return int(status)

    def screen_lines(self) -> list[str]:
        """Every line the screen showed, in order, without the escape sequences."""
        return [line.strip() for line in ANSI.sub("", self.transcript.getvalue()).split("\n")]

    def screen_words(self) -> str:
        """What the screen showed as words with single spaces: the same wherever a line
        was folded."""
        return " ".join(" ".join(self.screen_lines()).split())


class HeldLessons(AnthropicProvider):
    """The real provider whose lesson calls each wait until the test lets them go: a lesson
    stays "generating" for as long as the test needs to see it so on the screen."""

    def __init__(self, settings: Settings, fake: FakeAnthropic) -> None:
        super().__init__(settings, api_key=API_KEY, base_url=fake.base_url)
        self._go: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def release(self, position: int) -> None:
        self._go[position - 1].set()

    async def write_lesson(
        self,
        course: CourseOutline,
        index: int,
        on_text: TextSink,
        on_call: CallSink,
        instructions: str = "",
    ) -> LessonResult:
        await self._go[index].wait()
        return await super().write_lesson(course, index, on_text, on_call, instructions)


class Relay:
    """A TCP relay in front of the service: it keeps what the client sent, can cut every
    open connection at once, and with `page_for_streams` answers a job's event stream
    with a web page, as a proxy that does not pass SSE might."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = bytearray()
        self.page_for_streams = False
        self._open: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def cut(self) -> None:
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    async def _relay(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_in, server = await asyncio.open_connection("127.0.0.1", self.port)
        self._open += [client, server]

        async def upstream() -> None:
            while data := await client_in.read(65536):
                self.sent += data
                if self.page_for_streams and re.match(rb"GET /api/jobs/[^ ]+/events", data):
                    client.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                 b"Content-Length: 6\r\n\r\n<html>")  # fmt: skip
                    continue
                server.write(data)
                await server.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                client.write(data)
                await client.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        finally:
            client.transport.abort()
            server.transport.abort()


async def api(live: Live, path: str) -> Any:
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json() if "json" in response.headers["content-type"] else response


async def newest_course(live: Live) -> dict[str, Any]:
    course: dict[str, Any] = (await api(live, "/api/courses"))["courses"][0]
    return course


async def markdown_export(live: Live, course_id: int) -> dict[str, bytes]:
    response = await api(live, f"/api/courses/{course_id}/export/markdown")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


async def test_generate_shows_each_lesson_change_live_and_saves_the_markdown(
    start_live: StartLive, fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> None:
    provider = HeldLessons(settings, fake)
    live = await start_live(provider, concurrency=1)
    terminal = Terminal(
        "generate", "Sourdough baking", "--lessons", "3", "--server", live.url,
        "--out", "course", cwd=tmp_path,
    )  # fmt: skip

    def row(k: int, status: str) -> str:
        return rf"{k}\s+Lesson {k}:[^\n]*{status}"

    # Each expect reads on from where the one before matched: the screen shows these states
    # in this order. Lesson 1 is being written while the others wait (one call at a time)...
    await terminal.expect(r"0/3 lessons written")
    await terminal.expect(row(1, "… generating"))
    await terminal.expect(row(2, "· pending"))
    await terminal.expect(row(3, "· pending"))
    for k in (1, 2, 3):
        if k > 1:  # ...and each next one once the one before it is done.
            await terminal.expect(row(k, "… generating"))
        provider.release(k)
        await terminal.expect(row(k, "✓ complete"))
    assert await terminal.exit_status() == 0
    lines = terminal.screen_lines()
    # What the screen is left showing: the finished course, its state on the bar's line.
    final = lines.index("Saved the course's Markdown in course/")
    bar, *rows = lines[final - 4 : final]
    assert "3/3 lessons written" in bar and bar.endswith("[complete]"), bar
    for k, shown in enumerate(rows, 1):
        pattern = rf"{k}\s+Lesson {k}: .+✓ complete\s+[\d,]+ tok\s+cost unknown"
        assert re.fullmatch(pattern, shown), shown
    course = await newest_course(live)
    assert course["title"] == "Sourdough baking: a practical course"
    files = folder_files(tmp_path / "course")
    assert files == await markdown_export(live, course["id"])
    assert [re.sub(r"-.*", "", name) for name in sorted(files)] == ["01", "02", "03", "README.md"]


@SINGLE
async def test_piped_output_is_one_plain_line_per_status_change(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live(concurrency=1)
    fake.lesson_delay = 0.1
    result = await run("generate", "Bird watching", "--lessons", "2", "--server", live.url,
                       cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.err
    assert "\x1b" not in result.out
    course = await newest_course(live)
    lines = result.out.splitlines()
    assert lines[0] == 'Writing the outline of "Bird watching"...'
    assert lines[1].startswith(f'course {course["id"]} "Bird watching: a practical course": '
                               f'2 lessons, job {course["job"]["job_id"]}')  # fmt: skip
    for k in (1, 2):
        title = f'"Lesson {k}: '
        for status in ("pending", "generating", "complete"):
            said = [x for x in lines if x.startswith(f"lesson {k}/2 {status}: {title}")]
            assert len(said) == 1, (status, lines)
    done = next(x for x in lines if x.startswith("lesson 1/2 complete"))
    assert re.search(r"\([0-9,]+ tokens, cost unknown\)$", done)  # claude-test has no price
    assert lines[-2].startswith("course complete: 2/2 lessons written, ")
    # Named after the course, as its export is.
    assert lines[-1] == "Saved the course's Markdown in bird-watching-a-practical-course/"
    assert (tmp_path / "bird-watching-a-practical-course" / "README.md").is_file()


@SINGLE
async def test_a_failed_lesson_exits_1_and_still_saves_what_was_written(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live()
    fake.add_fault(kind="lesson", match="Lesson 2", status=500, times=None)
    result = await run("generate", "Knitting", "--lessons", "3", "--server", live.url,
                       "--out", "knitting", cwd=tmp_path)  # fmt: skip
    assert result.code == 1, result.err
    failed = [x for x in result.out.splitlines() if x.startswith("lesson 2/3 error")]
    assert len(failed) == 1 and "the model provider failed (500" in failed[0]
    assert "course error: 2/3 lessons written, 1 failed" in result.out
    files = folder_files(tmp_path / "knitting")
    assert [re.sub(r"-.*", "", name) for name in sorted(files)] == ["01", "03", "README.md"]
    assert files == await markdown_export(live, (await newest_course(live))["id"])


@SINGLE
async def test_ctrl_c_cancels_the_job_on_the_server_and_exits_130(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live(concurrency=1, lesson_timeout=60)
    fake.lesson_delay = 30
    work = tmp_path / "work"
    work.mkdir()
    terminal = Terminal("generate", "Pottery", "--lessons", "3", "--server", live.url,
                        cwd=work)  # fmt: skip
    await terminal.expect(r"1\s+Lesson 1:[^\n]*generating")
    terminal.child.sendintr()
    assert await terminal.exit_status() == 130
    job = (await newest_course(live))["job"]
    assert job["status"] == "cancelled"
    progress = await api(live, f"/api/jobs/{job['job_id']}/progress")
    assert progress["status"] == "cancelled"
    said = rf"Interrupted: cancelled job {job['job_id']}; 0/3 lessons written, [\d,]+ tokens, "
    # Read as words: where the terminal folds the line does not matter.
    assert re.search(said + r"cost unknown\.", terminal.screen_words())  # claude-test: no price
    assert not await asyncio.to_thread(os.listdir, work)  # nothing saved: not finished


async def test_without_a_server_it_runs_the_service_on_the_local_database(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    env = cli_env(COURSEGEN_DB=str(db), COURSEGEN_DEMO_DELAY="0.05")
    result = await run("generate", "Tea ceremony", "--lessons", "2", "--level", "advanced",
                       "--language", "Japanese", cwd=tmp_path, env=env)  # fmt: skip
    assert result.code == 0, result.err
    assert "offline demo provider" in result.err
    assert "course complete: 2/2 lessons written" in result.out
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.level, c.language, l.content_status FROM courses c "
            "JOIN lessons l ON l.course_id = c.id"
        ).fetchall()
    assert rows == [("advanced", "Japanese", "complete")] * 2
    folder = result.out.splitlines()[-1].removeprefix("Saved the course's Markdown in ")
    assert sorted(folder_files(tmp_path / folder.rstrip("/")))[-1] == "README.md"
    # The same database, listed and exported without a server.
    listed = await run("list", cwd=tmp_path, env=env)
    assert listed.code == 0, listed.err
    header, row = listed.out.splitlines()
    assert header.split() == ["ID", "WRITTEN", "STATUS", "COST", "TITLE"]
    assert row.split()[:3] == ["1", "2/2", "complete"]
    exported = await run("export", "1", "--format", "markdown", "-o", "tea.zip",
                         cwd=tmp_path, env=env)  # fmt: skip
    assert exported.code == 0, exported.err
    with zipfile.ZipFile(tmp_path / "tea.zip") as archive:
        assert sorted(archive.namelist()) == sorted(folder_files(tmp_path / folder.rstrip("/")))


@SINGLE
async def test_a_broken_stream_is_resumed_after_the_last_event_seen(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live(concurrency=1)
    fake.lesson_delay = 0.3
    relay = Relay(int(live.url.rsplit(":", 1)[1]))
    url = await relay.start()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coursegen", "generate", "Knitting", "--lessons", "3",
        "--server", url, cwd=tmp_path, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    async with asyncio.timeout(EXIT_WITHIN):
        while line := (await process.stdout.readline()).decode():
            lines.append(line.rstrip("\n"))
            if line.startswith("lesson 1/3 complete"):
                relay.cut()
        assert await process.wait() == 0
    await relay.close()
    said = [line.split(":")[0] for line in lines if line.startswith("lesson ")]
    assert sorted(said) == sorted(set(said))  # nothing twice
    assert {f"lesson {k}/3 complete" for k in (1, 2, 3)} <= set(said)
    resumed = re.findall(rb"GET /api/jobs/[^ ]+/events.*?\r\n\r\n", bytes(relay.sent), re.S)
    assert len(resumed) >= 2
    assert b"last-event-id: " not in resumed[0].lower()
    assert all(b"last-event-id: " in again.lower() for again in resumed[1:])


@SINGLE
async def test_without_an_event_stream_it_polls_the_course(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live()
    fake.lesson_delay = 0.2
    relay = Relay(int(live.url.rsplit(":", 1)[1]))
    relay.page_for_streams = True
    url = await relay.start()
    result = await run("generate", "Knitting", "--lessons", "2", "--server", url, cwd=tmp_path)
    await relay.close()
    assert result.code == 0, result.err
    assert "lesson 2/2 complete" in result.out
    assert "course complete: 2/2 lessons written" in result.out
    assert bytes(relay.sent).count(b"GET /api/courses/1 ") >= 1


async def test_ctrl_c_in_process_cancels_the_job_in_the_local_database(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    env = cli_env(COURSEGEN_DB=str(db), COURSEGEN_DEMO_DELAY="30", COURSEGEN_CONCURRENCY="1")
    terminal = Terminal("generate", "Pottery", "--lessons", "2", cwd=tmp_path, env=env)
    await terminal.expect(r"1\s+\S[^\n]*generating")
    terminal.child.sendintr()
    assert await terminal.exit_status() == 130
    with sqlite3.connect(db) as conn:
        jobs = conn.execute("SELECT status FROM content_generation_jobs").fetchall()
        lessons = conn.execute("SELECT content_status FROM lessons").fetchall()
    assert jobs == [("cancelled",)]
    assert lessons == [("pending",), ("pending",)]  # the call cut off waits for a retry


@SINGLE
async def test_bad_usage_exits_2_with_one_line_saying_why(
    start_live: StartLive, tmp_path: Path
) -> None:
    live = await start_live()
    zero = await run("generate", "Knitting", "--lessons", "0", "--server", live.url, cwd=tmp_path)
    assert zero.code == 2
    assert "--lessons: must be from 1 to 20, got 0" in zero.err
    short = await run("generate", "ab", "--server", live.url, cwd=tmp_path)
    assert short.code == 2
    assert short.err == "coursegen generate: topic must be 3 to 200 characters long (it has 2)\n"
    unknown = await run("export", "999", "--format", "html", "--server", live.url, cwd=tmp_path)
    assert (unknown.code, unknown.err) == (2, "coursegen export: no such course\n")
    no_scheme = await run("list", "--server", live.url.removeprefix("http://"), cwd=tmp_path)
    assert no_scheme.code == 2 and "--server takes a URL such as" in no_scheme.err
    assert (await api(live, "/api/courses"))["courses"] == []


@SINGLE
async def test_a_service_that_is_down_or_wants_a_token_is_one_line_and_exit_1(
    start_live: StartLive, tmp_path: Path
) -> None:
    down = await run("list", "--server", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert down.code == 1
    assert down.err.startswith("coursegen list: cannot reach the service at http://127.0.0.1:")
    assert down.err.count("\n") == 1
    token = "tok-" + "s3cret" * 6
    live = await start_live(api_token=token)
    refused = await run("generate", "Knitting", "--server", live.url, cwd=tmp_path)
    assert refused.code == 1
    assert refused.err == (
        f"coursegen generate: the service at {live.url} needs a token: set COURSEGEN_API_TOKEN\n"
    )
    wrong = await run("list", "--server", live.url, cwd=tmp_path,
                      env=cli_env(COURSEGEN_API_TOKEN="not-" + token))  # fmt: skip
    assert wrong.code == 1 and "refused the token" in wrong.err
    assert token not in wrong.out + wrong.err
    allowed = await run("list", "--server", live.url, cwd=tmp_path,
                        env=cli_env(COURSEGEN_API_TOKEN=token))  # fmt: skip
    assert (allowed.code, allowed.err) == (0, "no courses yet\n")


@SINGLE
async def test_list_shows_each_course_newest_first_and_searches(
    start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url) as http:
        for topic, lessons in (("Knitting", 2), ("Pottery", 3)):
            if topic == "Pottery":
                fake.add_fault(kind="lesson", match="Lesson 1", status=500, times=None)
            created = await http.post(
                "/api/courses/generate", json={"topic": topic, "lessons": lessons}
            )
            job_id = created.json()["job_id"]
            async with http.stream("GET", f"/api/jobs/{job_id}/events") as stream:
                await stream.aread()  # the stream ends with the job
    listed = await run("list", "--server", live.url, cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert [re.split(r"\s{2,}", line.strip()) for line in listed.out.splitlines()] == [
        ["ID", "WRITTEN", "STATUS", "COST", "TITLE"],
        ["2", "2/3", "error (1 failed)", "cost unknown", "Pottery: a practical course"],
        ["1", "2/2", "complete", "cost unknown", "Knitting: a practical course"],
    ]
    found = await run("list", "--search", "knit", "--server", live.url, cwd=tmp_path)
    assert [line.split()[0] for line in found.out.splitlines()] == ["ID", "1"]
    first = await run("list", "--limit", "1", "--server", live.url, cwd=tmp_path)
    assert [line.split()[0] for line in first.out.splitlines()] == ["ID", "2"]
    cursor = first.err.removeprefix("more: coursegen list --before ").strip()
    rest = await run("list", "--limit", "1", "--before", cursor, "--server", live.url,
                     cwd=tmp_path)  # fmt: skip
    assert [line.split()[0] for line in rest.out.splitlines()] == ["ID", "1"]
    assert rest.err == ""


@SINGLE
async def test_export_over_the_api_writes_the_file_the_api_serves(
    start_live: StartLive, tmp_path: Path
) -> None:
    live = await start_live()
    made = await run("generate", "Knitting", "--lessons", "1", "--server", live.url, cwd=tmp_path)
    assert made.code == 0, made.err
    result = await run("export", "1", "--format", "markdown", "--server", live.url, cwd=tmp_path)
    assert result.code == 0, result.err
    saved = tmp_path / "knitting-a-practical-course-markdown.zip"
    assert result.out.startswith(f"wrote {saved.name} (")
    served = await api(live, "/api/courses/1/export/markdown")
    assert saved.read_bytes() == served.content


def test_help_of_each_command_names_its_settings(capsys: pytest.CaptureFixture[str]) -> None:
    serve_only = {"COURSEGEN_HOST", "COURSEGEN_PORT", "COURSEGEN_ALLOWED_HOSTS",
                  "COURSEGEN_ALLOWED_ORIGINS"}  # fmt: skip
    flagged = {spec.env for spec in SPECS if spec.flag is not None}

    def help_of(command: str) -> str:
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    for command in ("generate", "list", "export"):
        text = help_of(command)
        for env in flagged - serve_only:
            assert env in text, (command, env)
        for env in ("COURSEGEN_SERVER", "COURSEGEN_API_TOKEN", "--server"):
            assert env in text, (command, env)
        assert "COURSEGEN_PORT" not in text  # it serves on a free port of its own
    assert all(env in help_of("serve") for env in flagged)
