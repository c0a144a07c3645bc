"""JSON endpoints. Handlers validate, call the runner or the store, and shape the answer."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coursegen.domain import Course, Lesson, LessonStatus
from coursegen.errors import NotFound
from coursegen.export import course_export
from coursegen.openapi import openapi_document
from coursegen.render import render_markdown
from coursegen.services import Services, services_of
from coursegen.validation import (
    parse_generate,
    parse_id,
    parse_idempotency_key,
    parse_instructions,
    parse_job_id,
    parse_lesson_edit,
    parse_list_query,
    parse_mode,
    parse_new_lesson,
    parse_options,
    read_json_object,
    read_optional_json_object,
)


def _generate_answer(course: Course, provider: str, estimate: float | None) -> dict[str, Any]:
    count = len(course.lessons)
    lessons = "1 lesson is" if count == 1 else f"{count} lessons are"
    demo = " (demo provider: sample content written offline)" if provider == "demo" else ""
    assert course.job is not None  # a course is created with its job
    return {
        "success": True,
        "course_id": course.id,
        "job_id": course.job.job_id,
        "message": f"Course created; {lessons} being written{demo}.",
        "course": course.to_json(),
        # The most its lessons can cost at their token limits; null: the model has no price.
        "estimate": {"max_cost_usd": None if estimate is None else round(estimate, 6)},
    }


async def generate(request: Request) -> JSONResponse:
    services = services_of(request)
    data = await read_json_object(request)
    topic, lessons = parse_generate(data)
    mode = parse_mode(data)
    options = parse_options(data)
    key = parse_idempotency_key(request)
    course = await services.runner.generate(topic, lessons, key, mode=mode, options=options)
    answer = _generate_answer(course, services.provider.name, services.runner.estimate(course))
    return JSONResponse(answer, status_code=201)


async def list_courses(request: Request) -> JSONResponse:
    """A page of courses, newest first; `next` (opaque) asks for the page after it."""
    query = parse_list_query(request)
    page = await services_of(request).store.list_courses(
        limit=query.limit, before=query.before, search=query.search
    )
    return JSONResponse(
        {
            "courses": [course.to_json() for course in page.courses],
            "next": None if page.next is None else str(page.next),
            "last_event_id": page.last_event_id,
        }
    )


async def course(request: Request) -> Response:
    if request.method == "DELETE":
        return await delete_course(request)
    return await get_course(request)


async def get_course(request: Request) -> JSONResponse:
    course = await services_of(request).store.get_course(parse_id(request.path_params["id"]))
    if course is None:
        raise NotFound("no such course")
    return JSONResponse(course.to_json())


async def delete_course(request: Request) -> Response:
    await services_of(request).runner.delete_course(parse_id(request.path_params["id"]))
    return Response(status_code=204)


async def export(request: Request) -> Response:
    services = services_of(request)
    course_id = parse_id(request.path_params["id"])
    made = await course_export(services.store, course_id, request.path_params["format"])
    return Response(
        made.body,
        media_type=made.media_type,
        # The same course gives the same bytes, but edits change them: no caching.
        headers={
            "Content-Disposition": f'attachment; filename="{made.filename}"',
            "Cache-Control": "no-store",
        },
    )


async def lesson(request: Request) -> Response:
    if request.method == "PATCH":
        return await edit_lesson(request)
    if request.method == "DELETE":
        return await remove_lesson(request)
    return await get_lesson(request)


async def get_lesson(request: Request) -> JSONResponse:
    return await _lesson_answer(request, parse_id(request.path_params["id"]))


async def _lesson_answer(request: Request, lesson_id: int) -> JSONResponse:
    lesson = await read_lesson(services_of(request), lesson_id)
    if lesson is None:
        raise NotFound("no such lesson")
    return JSONResponse(lesson_json(lesson))


async def edit_lesson(request: Request) -> JSONResponse:
    """Change a lesson by hand: title, description, text (Markdown), position."""
    lesson_id = parse_id(request.path_params["id"])
    edit = parse_lesson_edit(await read_json_object(request))
    await services_of(request).runner.edit_lesson(
        lesson_id,
        title=edit.title,
        description=edit.description,
        content=edit.content,
        position=edit.position,
    )
    return await _lesson_answer(request, lesson_id)


async def remove_lesson(request: Request) -> Response:
    await services_of(request).runner.remove_lesson(parse_id(request.path_params["id"]))
    return Response(status_code=204)


async def add_lesson(request: Request) -> JSONResponse:
    course_id = parse_id(request.path_params["id"])
    title, description, position = parse_new_lesson(await read_json_object(request))
    lesson_id = await services_of(request).runner.add_lesson(
        course_id, title, description, position
    )
    answer = await _lesson_answer(request, lesson_id)
    answer.status_code = 201
    return answer


async def lesson_versions(request: Request) -> JSONResponse:
    found = await services_of(request).store.versions(parse_id(request.path_params["id"]))
    if found is None:
        raise NotFound("no such lesson")
    return JSONResponse({"versions": [version.to_json() for version in found]})


async def lesson_version(request: Request) -> JSONResponse:
    lesson_id = parse_id(request.path_params["id"])
    found = await services_of(request).store.version(lesson_id, parse_id(request.path_params["n"]))
    if found is None:
        raise NotFound(f"lesson {lesson_id} has no such version")
    data = found.to_json(content=True)
    data["content_html"] = render_markdown(found.content)
    return JSONResponse(data)


async def restore_version(request: Request) -> JSONResponse:
    lesson_id = parse_id(request.path_params["id"])
    await services_of(request).runner.restore_version(lesson_id, parse_id(request.path_params["n"]))
    return await _lesson_answer(request, lesson_id)


async def retry_quiz(request: Request) -> JSONResponse:
    lesson_id = parse_id(request.path_params["id"])
    job_id = await services_of(request).runner.retry_quiz(lesson_id)
    return JSONResponse(
        {"lesson_id": lesson_id, "job_id": job_id, "quiz_status": "pending"}, status_code=202
    )


async def read_lesson(services: Services, lesson_id: int) -> Lesson | None:
    """A lesson; while this process writes it, its text is the draft's, fresher than
    the database's (which gets it once a second)."""
    lesson = await services.store.get_lesson(lesson_id)
    if lesson is None:
        return None
    draft = services.drafts.get(lesson_id)
    generating = lesson.content_status is LessonStatus.GENERATING
    if generating and draft is not None and draft.attempt == lesson.attempt:
        return dataclasses.replace(lesson, content=draft.text)
    return lesson


def lesson_json(lesson: Lesson) -> dict[str, Any]:
    """The API's lesson: its Markdown and that Markdown rendered and sanitised."""
    content = lesson.content
    return lesson.to_json(render_markdown(content) if content is not None else None)


async def prioritize_lesson(request: Request) -> JSONResponse:
    """Write this pending lesson next: a person is waiting to read it."""
    lesson_id = parse_id(request.path_params["id"])
    status = await services_of(request).runner.prioritize(lesson_id)
    return JSONResponse(
        {"lesson_id": lesson_id, "content_status": status.value},
        status_code=202 if status is LessonStatus.PENDING else 200,
    )


async def retry_lesson(request: Request) -> JSONResponse:
    """Write the lesson again; optional `instructions` apply to this regeneration only."""
    lesson_id = parse_id(request.path_params["id"])
    instructions = parse_instructions(await read_optional_json_object(request))
    job_id = await services_of(request).runner.retry_lesson(lesson_id, instructions)
    return JSONResponse(
        {"lesson_id": lesson_id, "job_id": job_id, "content_status": "pending"}, status_code=202
    )


async def job_progress(request: Request) -> JSONResponse:
    progress = await services_of(request).store.get_progress(
        parse_job_id(request.path_params["job_id"])
    )
    if progress is None:
        raise NotFound("no such job")
    return JSONResponse(progress.to_json())


async def retry_job(request: Request) -> JSONResponse:
    job_id = parse_job_id(request.path_params["job_id"])
    retried = await services_of(request).runner.retry_job(job_id)
    return JSONResponse({"job_id": job_id, "retried": retried}, status_code=202)


async def cancel_job(request: Request) -> JSONResponse:
    job_id = parse_job_id(request.path_params["job_id"])
    progress = await services_of(request).runner.cancel(job_id)
    return JSONResponse(progress.to_json(), status_code=202)


async def health(request: Request) -> JSONResponse:
    services = services_of(request)
    return JSONResponse(
        {
            "status": "ok",
            "provider": services.provider.name,
            "model": services.provider.model,
            "concurrency": services.settings.concurrency,
            # Lower than `concurrency` while the provider rate-limits (SPEC 11).
            "effective_concurrency": services.runner.throttle.effective,
            "rate_limit": {
                "paused_for_seconds": services.runner.throttle.snapshot()["paused_for_seconds"],
                # What the provider's last answer said is left (none offline).
                "remaining": services.provider.rate_limits(),
            },
            "active_jobs": await services.store.count_running_jobs(),
            "engine": services.settings.engine,
            "node": services.node,
        }
    )


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())
