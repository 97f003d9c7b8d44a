"""Asking again after an answer that cannot be used: the conversation, the bad answer (an
excerpt) and what was wrong with it. The listing's and the judge's re-asks alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..checking.validate import InvalidAnswer
    from ..planning.prompts import Message

REASK = (
    "Your answer cannot be used: {problem}. Reply again with only the corrected JSON object, "
    "keeping everything else that was right."
)
# What a re-ask repeats of the invalid answer, and of what was wrong with it: a pack of eight
# listings is about 12,000 characters, so a longer answer is not one we asked for.
REASK_ANSWER_CHARS = 16_000
REASK_NOTE_CHARS = 4_000


def reask(messages: list[Message], answer: str, problem: InvalidAnswer, *, note: str = REASK) -> list[Message]:
    """The conversation plus the bad answer (an excerpt, when it is longer than any answer we
    asked for could be) and what was wrong with it (`note`, with `{problem}` in it)."""
    said = {"role": "user", "content": excerpt(note.format(problem=problem.message), REASK_NOTE_CHARS)}
    if problem.kind == "truncated":
        # A cut-off answer is broken JSON: resending it would only pay for it twice.
        return [*messages, said]
    return [*messages, {"role": "assistant", "content": excerpt(answer, REASK_ANSWER_CHARS)}, said]


def excerpt(text: str, limit: int) -> str:
    """`text`, or its start and a word on what was left out: a relay that answers megabytes of
    garbage must not have it repeated (and paid for) in every re-ask."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters left out]"
