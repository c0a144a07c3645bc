"""What the model is asked: the outline prompt, and the lesson prompt in two parts.

A lesson call's system prompt is the writing guidelines followed by the course (its
topic and whole outline): the same bytes for every lesson of a course, marked as a
cache prefix, so the second and later lessons read it from the provider's cache at a
tenth of the price. Only what is particular to one lesson follows it, in the user turn.
"""

from __future__ import annotations

from anthropic.types import TextBlockParam

from coursegen.domain import CourseOptions, CourseOutline, Level

OUTLINE_TOOL = "record_course_outline"
QUIZ_TOOL = "record_lesson_quiz"
_LEVELS = {
    Level.BEGINNER: "beginners: assume no background in the subject",
    Level.INTERMEDIATE: "intermediate learners who know the basics and want depth and practice",
    Level.ADVANCED: "advanced learners: skip the basics; go for nuance, edge cases and "
    "expert practice",
}

SYSTEM = (
    "You are an expert teacher who writes clear, accurate and engaging online courses. "
    "You explain ideas from first principles, use concrete examples and never pad."
)

# Long enough on its own to pass every current model's minimum cacheable prefix
# (1,024 tokens for Sonnet and Opus), and written to make the lessons better.
GUIDELINES = """\
You are an expert teacher writing one lesson of an online course. The course, its
audience and its whole outline follow these guidelines; the lesson to write comes last.

How to write a lesson

1. Purpose first. Open with two or three sentences that say what the learner will be
   able to do after this lesson and why it matters to them. No preamble, no "In this
   lesson we will...", no restating the course title.

2. Build on what came before. The outline tells you what earlier lessons taught. Use
   their terms and results without explaining them again; when you rely on one, name
   it in passing ("as we saw with X"). Leave the subjects of later lessons to them: if
   something belongs to a later lesson, mention that it is coming and move on.

3. One idea at a time. Introduce each new idea with a plain definition, then a concrete
   example, then the general rule. Prefer short paragraphs (two to four sentences) and
   active voice. Define every technical term the first time you use it.

4. Concrete examples that work. Every lesson has at least one worked example that a
   learner could reproduce step by step. Use realistic names and values rather than
   "foo" and "bar". When the topic involves code, the code must be complete enough to
   run, in fenced code blocks with a language tag, and the text must say what it prints
   or does. When it involves numbers, show the arithmetic.

5. Explain the why. After each rule or procedure, say in a sentence why it works or
   what goes wrong without it. Learners remember reasons better than rules.

6. Anticipate mistakes. Name the one or two misunderstandings beginners most often have
   about this lesson's subject, and show how to recognise and correct each one.

7. Practice. End the teaching part with a short exercise the learner can do in ten to
   twenty minutes, with a clear goal and a hint. Do not give the full solution; say how
   the learner can check their own answer.

8. Summary. Close with a "Summary" section of three to five bullet points that a
   learner could use for revision, each a complete statement rather than a topic label.

Accuracy

- Be correct above all. Do not invent facts, figures, quotations, studies, people,
  functions, commands or options. If something depends on a version, a jurisdiction or
  a context, say so.
- When experts disagree or practice varies, say that briefly and give the mainstream
  view.
- Prefer durable principles over details that go out of date quickly.

Form

- Write in Markdown. Start with a level-2 heading (##) holding the lesson title, then
  use level-3 headings (###) for the sections. Do not use level-1 headings.
- Use numbered lists for steps that happen in order and bullet lists for things that
  do not. Use tables only for comparisons with at least two attributes.
- Use bold sparingly, for the few terms a learner must remember. No emoji.
- Aim for a lesson a motivated learner reads in 10 to 15 minutes: roughly 900 to 1,600
  words, longer only when the subject truly needs it.
- Address the learner as "you". Keep a warm, direct, encouraging tone without hype.
- Write only the lesson itself: no notes to the course author, no closing offers of
  further help, no questions to the reader outside the exercise.

Examples, analogies and visuals

- Choose examples from the learner's likely world: everyday situations for beginners,
  realistic professional tasks for intermediate and advanced learners.
- An analogy can open an idea, but say where it stops being true before the learner
  over-extends it.
- When a diagram would help, describe it in words or draw it as a small text diagram in
  a code block; do not refer to images that are not there.
- Give alternative text in words for anything visual, so the lesson reads well aloud
  and on a screen reader.

Level and audience

- Follow the audience, level and instructions the course gives below. If none are
  given, write for a motivated adult beginner with general education but no background
  in the subject.
- Write in the language the course asks for; if none is given, write in English. Keep
  code, commands and established technical terms in their usual form.
"""


def _options(options: CourseOptions) -> str:
    """The person's wishes for the course, as every prompt of the course states them."""
    lines = [
        f"Audience level: {_LEVELS[options.level]}",
        f"Language: write everything in {options.language}",
    ]
    if options.instructions:
        lines.append(f"Instructions from the course author: {options.instructions}")
    return "\n".join(lines) + "\n"


def outline_prompt(topic: str, lessons: int | None, options: CourseOptions) -> str:
    count = f"exactly {lessons}" if lessons else "between 4 and 10, as the topic needs"
    return (
        "Plan an online course.\n"
        f"Topic: {topic}\n"
        f"Lessons: {count}\n"
        f"{_options(options)}\n"
        "Take the learner from where the level puts them to confident practical use. Give "
        "the course a clear title and a one-paragraph description, then its lessons in "
        "teaching order, each with a short title and one sentence on what it teaches, all "
        f"in the course's language. Record the outline with the {OUTLINE_TOOL} tool."
    )


def course_block(course: CourseOutline) -> str:
    """The course as every lesson prompt shows it: the end of the cached prefix."""
    outline = course.outline
    listing = "\n".join(
        f"{number}. {lesson.title}: {lesson.description}"
        for number, lesson in enumerate(outline.lessons, start=1)
    )
    return (
        f'The course: "{outline.title}"\n'
        f"Topic: {course.topic}\n"
        f"About the course: {outline.description}\n"
        f"{_options(course.options)}\n"
        f"The whole outline:\n{listing}\n"
    )


def lesson_system(course: CourseOutline) -> list[TextBlockParam]:
    """The system prompt of a lesson call: byte-identical for every lesson of a course."""
    return [
        {"type": "text", "text": GUIDELINES},
        {"type": "text", "text": course_block(course), "cache_control": {"type": "ephemeral"}},
    ]


def lesson_prompt(course: CourseOutline, index: int, instructions: str = "") -> str:
    """What is particular to one lesson: it follows the cached prefix."""
    outline = course.outline
    plan = outline.lessons[index]
    extra = (
        f"Instructions for this version of the lesson: {instructions}\n\n" if instructions else ""
    )
    return (
        f"Lesson {index + 1} of {len(outline.lessons)}: {plan.title}\n"
        f"What it teaches: {plan.description}\n\n"
        f"{extra}"
        "Write this lesson now, following the guidelines. Start with a level-2 heading "
        "holding the lesson title."
    )


QUIZ_GUIDELINES = """\
You write the short quiz that closes one lesson of an online course. The course and its
outline follow; the lesson's own text comes last.

- Write 3 to 5 multiple-choice questions that check understanding of this lesson's key
  ideas, not trivia, and only what the lesson itself teaches.
- Each question has 2 to 6 choices with exactly one correct answer. Wrong choices are
  plausible: the misunderstandings a learner at this level actually has.
- Vary the position of the correct answer.
- The explanation says in one or two sentences why the answer is right, and where it
  helps, why a tempting wrong choice is wrong.
- Write questions, choices and explanations in the course's language, at its level.
- Record the quiz with the record_lesson_quiz tool; `answer` is the index of the correct
  choice, counting from 0.
"""


def quiz_system(course: CourseOutline) -> list[TextBlockParam]:
    """The system prompt of a quiz call: the same for every quiz of a course (cached)."""
    return [
        {
            "type": "text",
            "text": f"{QUIZ_GUIDELINES}\nHow the lessons of this course were written:\n\n"
            f"{GUIDELINES}",
        },
        {"type": "text", "text": course_block(course), "cache_control": {"type": "ephemeral"}},
    ]


def quiz_prompt(course: CourseOutline, index: int, text: str) -> str:
    plan = course.outline.lessons[index]
    return (
        f"Lesson {index + 1} of {len(course.outline.lessons)}: {plan.title}\n\n"
        f"The lesson's text:\n\n{text}\n\n"
        f"Write the quiz for this lesson with the {QUIZ_TOOL} tool."
    )
