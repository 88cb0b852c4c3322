"""The prompt format must match the reference workshop byte for byte."""

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.data.prompts import format_sql, load_templates, prompt_completion, prompt_messages

# The workshop's own example (reference text, "Dataset sample").
EXAMPLE = {
    "sql_prompt": "Find the total fare collected from passengers on 'Green Line' buses",
    "sql_context": "CREATE TABLE bus_routes (route_name VARCHAR(50), fare FLOAT); INSERT INTO bus_routes "
    "(route_name, fare) VALUES ('Green Line', 1.50), ('Red Line', 2.00), ('Blue Line', 1.75);",
    "sql": "SELECT SUM(fare) FROM bus_routes WHERE route_name = 'Green Line';",
}
SYSTEM = (
    "You are an expert SQL query generator. Your task is to generate a correct SQL query that answers "
    "a user's prompt using the provided schema."
)


def test_sql_is_pretty_printed_and_fenced_like_the_workshop():
    import sqlparse

    expected_body = sqlparse.format(EXAMPLE["sql"], reindent=True, keyword_case="upper")
    assert format_sql(EXAMPLE["sql"]) == "```sql\n" + expected_body + "\n```"
    assert format_sql("select a from t where b = 1") == "```sql\nSELECT a\nFROM t\nWHERE b = 1\n```"


def test_workshop_example_renders_as_conversational_prompt_completion():
    import sqlparse

    row = prompt_completion(load_templates(), EXAMPLE)
    context = sqlparse.format(EXAMPLE["sql_context"], reindent=True, keyword_case="upper")
    assert row == {
        "prompt": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"Prompt:\n{EXAMPLE['sql_prompt']}\n\nSchema:\n```sql\n{context}\n```",
            },
        ],
        "completion": [
            {
                "role": "assistant",
                "content": "```sql\nSELECT SUM(fare)\nFROM bus_routes\nWHERE route_name = 'Green Line';\n```",
            }
        ],
    }
    # serving, chat and eval ask with exactly the training prompt
    assert prompt_messages(load_templates(), EXAMPLE["sql_prompt"], EXAMPLE["sql_context"]) == row["prompt"]


def test_user_templates_are_sandboxed_and_errors_name_the_template_and_line(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "system.jinja").write_text("sys")
    (folder / "user.jinja").write_text("Q: {{ sql_prompt }}\n{{ nonexistent_column }}")
    (folder / "assistant.jinja").write_text("{{ sql }}")
    templates = load_templates(folder)
    with pytest.raises(SqlsftError, match=r"user\.jinja line 2: 'nonexistent_column' is undefined"):
        prompt_completion(templates, EXAMPLE)

    (folder / "user.jinja").write_text("{{ sql_prompt.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SqlsftError, match=r"user\.jinja"):
        prompt_completion(load_templates(folder), EXAMPLE)

    (folder / "user.jinja").write_text("line one\n{% if %}")
    with pytest.raises(SqlsftError, match=r"user\.jinja line 2"):
        load_templates(folder)


def test_unknown_template_lists_shipped_ones():
    with pytest.raises(SqlsftError, match="text-to-sql"):
        load_templates("no-such-template")


def big_insert(rows: int) -> str:
    values = ", ".join(f"({i}, 'item {i}', {i * 7 % 1000}.25)" for i in range(rows))
    return (
        "CREATE TABLE items (id INT, name VARCHAR(20), price DECIMAL(10,2)); "
        f"INSERT INTO items (id, name, price) VALUES {values};"
    )


# sha256 of sqlparse 0.5.3's (the workshop's pin) format(big_insert(1000), reindent=True, keyword_case="upper");
# sqlparse 0.6 refuses that statement (over 10,000 tokens) with its default limit.
WORKSHOP_FORMAT_OF_1000_ROW_INSERT = "d632d77be62577d3b9b0969a6d848793dc9ae5c9f227b2d7d8300db355097106"


def test_statement_over_sqlparse_06_token_limit_is_formatted_as_the_workshop_does():
    import hashlib

    fenced = format_sql(big_insert(1000))
    body = fenced.removeprefix("```sql\n").removesuffix("\n```")
    assert hashlib.sha256(body.encode()).hexdigest() == WORKSHOP_FORMAT_OF_1000_ROW_INSERT


def test_statement_too_large_to_format_is_a_clear_error():
    from sqlsft.data.prompts import SqlFormatError

    with pytest.raises(SqlFormatError, match="could not be formatted"):
        format_sql(big_insert(10_000))


def test_a_workshop_prompts_folder_works_unchanged(tmp_path):
    """The workshop's own templates name the formatted texts new_sql and new_sql_context."""
    folder = tmp_path / "prompts" / "gretelai" / "synthetic_text_to_sql"
    folder.mkdir(parents=True)
    (folder / "system.jinja").write_text(SYSTEM)
    (folder / "user.jinja").write_text("Prompt:\n{{ sql_prompt }}\n\nSchema:\n{{ new_sql_context }}")
    (folder / "assistant.jinja").write_text("{{ new_sql }}")
    assert prompt_completion(load_templates(folder), EXAMPLE) == prompt_completion(load_templates(), EXAMPLE)
    assert prompt_messages(load_templates(folder), EXAMPLE["sql_prompt"], EXAMPLE["sql_context"]) == (
        prompt_messages(load_templates(), EXAMPLE["sql_prompt"], EXAMPLE["sql_context"])
    )
