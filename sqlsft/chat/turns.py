"""Questions in, messages out: what the model is sent for a question typed or pasted into the page.

Each question is sent the way the model was trained: the system prompt and the user message rendered
by `sqlsft.data.prompts` (no earlier turns). A message pasted in the workshop's own `Prompt:` /
`Schema:` format is already rendered: it is sent as is, since formatting its schema a second time
changes it (sqlparse's reindent is not idempotent).
"""

import re
from dataclasses import dataclass

from sqlsft.data.prompts import PromptTemplates, prompt_messages

# Both patterns are anchored (at the start, at line starts) and scan each character a bounded number of
# times: a pasted text of any shape is parsed in linear time.
_PROMPT_HEAD = re.compile(r"\s*Prompt:", re.IGNORECASE)
_SCHEMA_LINE = re.compile(r"^[ \t]*Schema:", re.IGNORECASE | re.MULTILINE)


def parse_workshop_message(text: str) -> tuple[str, str] | None:
    """(question, schema) from a message in the workshop's `Prompt:` / `Schema:` format, else None."""
    text = text or ""
    head = _PROMPT_HEAD.match(text)
    first_break = text.find("\n", head.end()) if head else -1
    schema_line = _SCHEMA_LINE.search(text, first_break + 1) if first_break >= 0 else None
    if schema_line is None:
        return None
    question = text[head.end() : schema_line.start()].strip()
    return question, _unfenced(text[schema_line.end() :].strip())


def _unfenced(schema: str) -> str:
    """The schema inside a ```sql fence (the language tag dropped), or the schema as it is."""
    if len(schema) < 6 or not (schema.startswith("```") and schema.endswith("```")):
        return schema
    inner = schema[3:-3]
    tag, newline, rest = inner.partition("\n")
    if newline and (not tag.strip() or tag.strip().isalpha()):
        inner = rest
    return inner.strip()


@dataclass(frozen=True)
class Turn:
    """One question as asked: the messages sent, the schema the answer's SQL runs against, and what
    the question and schema boxes held (undo puts them back)."""

    messages: list[dict]
    schema: str
    typed_question: str
    typed_schema: str

    @property
    def user_message(self) -> str:
        return self.messages[-1]["content"]


def system_message(templates: PromptTemplates) -> dict:
    return prompt_messages(templates, "", "")[0]


def build_turn(templates: PromptTemplates, question: str, schema: str) -> Turn:
    """The messages for a question and the schema box; SqlsftError when they cannot be built (a user
    template that does not render, a statement sqlparse cannot format)."""
    pasted = parse_workshop_message(question)
    if pasted:
        # Surrounding whitespace is dropped: training messages have none.
        user = {"role": "user", "content": question.strip()}
        return Turn([system_message(templates), user], pasted[1] or schema, question, schema)
    messages = prompt_messages(templates, question.strip(), schema)
    return Turn(messages, schema, question, schema)


def was_sent(turn: Turn | None, text: str) -> bool:
    """Whether `text` (a user turn read back from the chatbot, which may re-indent it) is what `turn` sent."""
    if turn is None:
        return False
    return " ".join(text.split()) == " ".join(turn.user_message.split())
