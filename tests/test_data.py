"""The prepare stage: sources, mapping, splits, validation by execution, cache, bad input."""

import json
import shutil
import subprocess
import time

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.data.cache import Prepared, find_prepared
from sqlsft.data.prepare import PrepareOptions, prepare
from sqlsft.data.sources import parse_column_map
from tests.cli_runner import invoke, one_error_line, run_process

GOOD_ROWS = [
    {
        "id": i,
        "sql_prompt": f"How many orders does customer {i} have?",
        "sql_context": "CREATE TABLE orders (id INT, customer INT); INSERT INTO orders VALUES (1, 1), (2, 2), (3, 1);",
        "sql": f"SELECT COUNT(*) FROM orders WHERE customer = {i % 3};",
        "sql_complexity": "aggregation",
    }
    for i in range(1, 41)
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def options(tmp_path, **kwargs):
    kwargs.setdefault("model", None)  # no tokenizer: the hub is out of reach here
    kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
    kwargs.setdefault("num_proc", 1)
    return PrepareOptions(**kwargs)


def test_builtin_prepare_splits_90_5_5_and_validates_by_execution(tmp_path):
    prepared = prepare(options(tmp_path, dataset="builtin", num_rows=200))
    data = prepared.load()
    assert {k: len(v) for k, v in data.items()} == {"train": 180, "validation": 10, "test": 10}
    row = data["train"][0]
    assert row["prompt"][0]["role"] == "system" and row["completion"][0]["role"] == "assistant"
    assert row["completion"][0]["content"].startswith("```sql\n")
    # every builtin gold query executes: the per-row flag and the report agree
    assert all(data["train"]["sql_executes"])
    assert prepared.manifest["validation"]["train"]["executable_share"] == 1.0
    # deterministic: a forced rebuild gives the same rows in the same order
    again = prepare(options(tmp_path, dataset="builtin", num_rows=200, force=True)).load()
    assert list(again["test"]["id"]) == list(data["test"]["id"]) and list(again["train"]["sql"]) == list(
        data["train"]["sql"]
    )


def test_cache_hit_miss_and_key(tmp_path):
    first = prepare(options(tmp_path, dataset="builtin", num_rows=100))
    assert not first.cache_hit
    started = time.perf_counter()
    second = prepare(options(tmp_path, dataset="builtin", num_rows=100))
    assert second.cache_hit and second.path == first.path
    assert time.perf_counter() - started < 3
    assert not prepare(options(tmp_path, dataset="builtin", num_rows=100, force=True)).cache_hit
    # anything that changes the rows changes the key
    assert prepare(options(tmp_path, dataset="builtin", num_rows=100, seed=7)).path != first.path
    assert prepare(options(tmp_path, dataset="builtin", num_rows=100, max_length=64)).path != first.path
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest["rows"] == {"train": 90, "validation": 5, "test": 5}
    assert manifest["key"]["templates"]["user"].startswith("Prompt:")


def test_template_content_is_part_of_the_key(tmp_path):
    from sqlsft.common.paths import templates_dir

    mine = tmp_path / "tpl"
    mine.mkdir()
    for role in ("system", "user", "assistant"):
        (mine / f"{role}.jinja").write_text((templates_dir() / "text-to-sql" / f"{role}.jinja").read_text())
    data_file = write_jsonl(tmp_path / "rows.jsonl", GOOD_ROWS)
    first = prepare(options(tmp_path, dataset=str(data_file), template=str(mine)))
    (mine / "system.jinja").write_text("Write SQL.")
    second = prepare(options(tmp_path, dataset=str(data_file), template=str(mine)))
    assert not second.cache_hit and second.path != first.path
    assert second.load()["train"][0]["prompt"][0]["content"] == "Write SQL."


def test_local_files_keep_the_test_split_and_carve_validation_of_its_size(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", GOOD_ROWS)
    test = write_jsonl(tmp_path / "test.jsonl", GOOD_ROWS[:6])
    data = prepare(options(tmp_path, dataset=str(train), test_file=str(test))).load()
    assert len(data["test"]) == 6 and len(data["validation"]) == 6 and len(data["train"]) == 34
    assert sorted(list(data["train"]["id"]) + list(data["validation"]["id"])) == list(range(1, 41))


def test_csv_and_parquet_and_several_files(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(GOOD_ROWS)
    frame.iloc[:20].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[20:].to_csv(tmp_path / "b.csv", index=False)
    data = prepare(
        options(tmp_path, dataset=str(tmp_path / "a.csv"), data_files=[str(tmp_path / "b.csv")])
    ).load()
    assert sum(len(s) for s in data.values()) == 40
    frame.to_parquet(tmp_path / "all.parquet")
    data = prepare(options(tmp_path, dataset=str(tmp_path / "all.parquet"))).load()
    assert sum(len(s) for s in data.values()) == 40


def test_column_mapping(tmp_path):
    renamed = [
        {"question": r["sql_prompt"], "context": r["sql_context"], "answer": r["sql"]} for r in GOOD_ROWS
    ]
    data_file = write_jsonl(tmp_path / "qa.jsonl", renamed)
    mapping = parse_column_map(["question=sql_prompt,context=sql_context", "answer=sql"])
    assert mapping == {"question": "sql_prompt", "context": "sql_context", "answer": "sql"}
    data = prepare(options(tmp_path, dataset=str(data_file), column_map=mapping)).load()
    assert "How many orders" in data["train"][0]["prompt"][1]["content"]
    assert data["train"][0]["id"] is not None  # ids are added when the source has none
    with pytest.raises(
        SqlsftError,
        match=r"lacks the columns sql_prompt, sql_context, sql; it has: question, context, answer.*--map",
    ):
        prepare(options(tmp_path, dataset=str(data_file)))
    with pytest.raises(SqlsftError, match="SOURCE=TARGET"):
        parse_column_map(["question"])


def test_missing_fields_are_skipped_and_counted_and_broken_sql_is_flagged(tmp_path):
    rows = [dict(r) for r in GOOD_ROWS]
    rows[3]["sql"] = ""
    rows[7]["sql_prompt"] = None
    rows[9]["sql"] = "SELECT nope FROM missing_table;"
    data_file = write_jsonl(tmp_path / "rows.jsonl", rows)
    prepared = prepare(options(tmp_path, dataset=str(data_file)))
    report = prepared.manifest["validation"]
    assert sum(s["skipped"] for s in report.values()) == 2
    assert sorted(i for s in report.values() for i in s["skipped_ids"]) == [4, 8]
    assert sum(s["rows"] for s in report.values()) == 38
    data = prepared.load()
    flags = {r["id"]: (r["sql_executes"], r["sql_error"]) for split in data.values() for r in split}
    assert flags[10][0] is False and "missing_table" in flags[10][1]
    assert sum(1 for ok, _ in flags.values() if ok) == 37


def test_mysql_flavoured_schema_is_transpiled_for_validation(tmp_path):
    rows = [
        dict(
            r,
            sql_context="CREATE TABLE `orders` (id INT AUTO_INCREMENT PRIMARY KEY, customer INT); "
            "INSERT INTO `orders` (customer) VALUES (1), (2), (1);",
        )
        for r in GOOD_ROWS
    ]
    prepared = prepare(options(tmp_path, dataset=str(write_jsonl(tmp_path / "m.jsonl", rows))))
    assert prepared.manifest["validation"]["train"]["executable_share"] == 1.0


def test_a_test_file_beside_builtin_or_a_folder_is_the_test_split_and_part_of_the_key(tmp_path):
    # it used to be read for local files only: builtin and folders kept their own test rows, silently
    test = write_jsonl(tmp_path / "mine.jsonl", GOOD_ROWS[:6])
    first = prepare(options(tmp_path, dataset="builtin", num_rows=100, test_file=str(test)))
    data = first.load()
    assert list(data["test"]["sql_prompt"]) == [r["sql_prompt"] for r in GOOD_ROWS[:6]]
    assert len(data["validation"]) == 6 and len(data["train"]) == 94  # all 100 builtin rows train or validate
    assert first.manifest["key"]["source"]["test_file"]["name"] == "mine.jsonl"
    write_jsonl(test, GOOD_ROWS[6:9])  # other content, same name: another preparation
    again = prepare(options(tmp_path, dataset="builtin", num_rows=100, test_file=str(test)))
    assert not again.cache_hit and len(again.load()["test"]) == 3

    repo = tmp_path / "folder"
    (repo / "data").mkdir(parents=True)
    write_jsonl(repo / "data" / "train.jsonl", GOOD_ROWS[9:])
    write_jsonl(repo / "data" / "test.jsonl", GOOD_ROWS[:1])
    assert len(prepare(options(tmp_path, dataset=str(repo), test_file=str(test))).load()["test"]) == 3
    with pytest.raises(SqlsftError, match=r"--test-file .* does not exist"):
        prepare(options(tmp_path, dataset="builtin", num_rows=100, test_file=str(tmp_path / "none.jsonl")))


def test_hub_code_path_with_a_dataset_repository_laid_out_as_the_hub_serves_it(tmp_path):
    import pandas as pd

    repo = tmp_path / "synthetic_text_to_sql"
    (repo / "data").mkdir(parents=True)
    pd.DataFrame(GOOD_ROWS[:30]).to_parquet(repo / "data" / "train-00000-of-00001.parquet")
    pd.DataFrame(GOOD_ROWS[30:]).to_parquet(repo / "data" / "test-00000-of-00001.parquet")
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: test\n    path: data/test-*\n---\n# synthetic_text_to_sql (local copy)\n"
    )
    data = prepare(options(tmp_path, dataset=str(repo))).load()
    assert len(data["test"]) == 10 and len(data["validation"]) == 10 and len(data["train"]) == 20


def test_bad_inputs_give_one_clear_error(tmp_path):
    with pytest.raises(SqlsftError, match=r"--dataset .*nope\.jsonl does not exist"):
        prepare(options(tmp_path, dataset=str(tmp_path / "nope.jsonl")))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(GOOD_ROWS[0]) + "\n" + json.dumps(GOOD_ROWS[1]) + "\n{not json\n")
    with pytest.raises(SqlsftError, match=r"broken\.jsonl: line 3"):
        prepare(options(tmp_path, dataset=str(broken)))
    empty = write_jsonl(tmp_path / "empty.jsonl", [dict(r, sql="  ") for r in GOOD_ROWS])
    with pytest.raises(SqlsftError, match="No usable rows left"):
        prepare(options(tmp_path, dataset=str(empty)))
    with pytest.raises(
        SqlsftError, match=r"--data-file .*rows\.txt: '\.txt' is not a supported data file format"
    ):
        (tmp_path / "rows.txt").write_text("x")
        prepare(options(tmp_path, dataset=str(empty), data_files=[str(tmp_path / "rows.txt")]))


def test_unreachable_hub_says_so_and_suggests_builtin(tmp_path):
    # The real hub code path: this machine cannot reach huggingface.co.
    with pytest.raises(SqlsftError, match=r"unreachable.*--dataset builtin"):
        prepare(options(tmp_path, dataset="gretelai/synthetic_text_to_sql"))


@pytest.mark.slow
def test_cli_prepare_builtin_end_to_end(tmp_path):
    env = {"SQLSFT_CACHE_DIR": str(tmp_path / "c")}
    result = run_process("prepare", "--dataset", "builtin", "--num-rows", "300", "--no-token-stats", env=env)
    assert result.returncode == 0, result.stderr
    assert "Cache miss" in result.stdout and "train" in result.stdout and "270" in result.stdout
    again = run_process("prepare", "-d", "builtin", "--num-rows", "300", "--no-token-stats", env=env)
    assert again.returncode == 0 and "Cache hit" in again.stdout
    manifests = list((tmp_path / "c" / "datasets").glob("*/manifest.json"))
    assert len(manifests) == 1


def test_cli_bad_input_is_one_line_without_traceback(tmp_path):
    result = invoke("prepare", "--dataset", str(tmp_path / "missing.csv"), "--no-token-stats")
    assert "does not exist" in one_error_line(result)


# ---------------------------------------------------------------- mistakes that once ended in tracebacks


def prepare_cli(tmp_path, *args):
    return invoke("prepare", *args, "--no-token-stats", env={"SQLSFT_CACHE_DIR": str(tmp_path / "cache")})


def test_non_utf8_jsonl_is_one_line_naming_the_line(tmp_path):
    data = write_jsonl(tmp_path / "latin1.jsonl", GOOD_ROWS)
    lines = data.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b"How many", b"Caf\xe9 how many")  # latin-1, not UTF-8
    data.write_bytes(b"".join(lines))
    error = one_error_line(prepare_cli(tmp_path, "-d", str(data)))
    assert "latin1.jsonl is not UTF-8 text: line 6" in error and "0xe9" in error


def test_empty_jsonl_says_it_is_empty(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    for name in ("empty.jsonl", "blank.jsonl"):
        error = one_error_line(prepare_cli(tmp_path, "-d", str(tmp_path / name)))
        assert f"{name} is empty" in error and "StopIteration" not in error


def test_unsupported_extension_names_the_supported_ones(tmp_path):
    (tmp_path / "x.txt").write_text("SELECT 1;\n")
    error = one_error_line(prepare_cli(tmp_path, "-d", str(tmp_path / "x.txt")))
    assert "x.txt: '.txt' is not a supported data file format" in error
    assert ".csv, .json, .jsonl, .parquet" in error
    # a missing file with such a name is a missing file, not a hub data set
    assert "does not exist" in one_error_line(prepare_cli(tmp_path, "-d", str(tmp_path / "gone.txt")))


def test_test_file_that_is_a_folder_says_so(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", GOOD_ROWS)
    (tmp_path / "folder").mkdir()
    error = one_error_line(prepare_cli(tmp_path, "-d", str(data), "--test-file", str(tmp_path / "folder")))
    assert "--test-file" in error and "is a folder, not a data file" in error


def test_cache_dir_that_is_a_file_is_one_line(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", GOOD_ROWS)
    (tmp_path / "cache").write_text("not a folder")
    error = one_error_line(prepare_cli(tmp_path, "-d", str(data)))
    assert "is a file, not a folder" in error and "SQLSFT_CACHE_DIR" in error


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no one may write to, even root (chmod for users, the immutable flag for root)."""
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    probe = folder / "probe"
    try:
        probe.touch()
        probe.unlink()
        if shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        try:
            probe.touch()
            probe.unlink()
            pytest.skip("cannot make a read-only folder on this machine")
        except OSError:
            pass
    except OSError:
        pass
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_read_only_cache_dir_is_one_line_before_any_work(tmp_path, read_only_folder):
    data = write_jsonl(tmp_path / "rows.jsonl", GOOD_ROWS)
    error = one_error_line(prepare_cli(tmp_path, "-d", str(data)))
    assert "is not writable" in error and "SQLSFT_CACHE_DIR" in error


def test_rows_too_large_for_sqlparse_06_are_formatted_or_skipped_and_counted(tmp_path):
    from tests.test_prompts import big_insert

    rows = [dict(r) for r in GOOD_ROWS]
    rows[0]["sql_context"] = big_insert(1000)  # over sqlparse 0.6's 10,000 tokens: formatted as 0.5.3 does
    rows[1]["sql_context"] = big_insert(10_000)  # over 100,000 tokens: skipped and counted
    prepared = prepare(options(tmp_path, dataset=str(write_jsonl(tmp_path / "big.jsonl", rows))))
    report = prepared.manifest["validation"]
    assert sum(s["skipped_unformattable"] for s in report.values()) == 1
    assert [i for s in report.values() for i in s["skipped_ids"]] == [2]
    kept = {r["id"]: r for split in prepared.load().values() for r in split}
    assert 1 in kept and "VALUES (0, 'item 0', 0.25)," in kept[1]["prompt"][1]["content"]


# ---------------------------------------------------------------- the API other stages use


def test_prepared_can_be_found_opened_and_split(tmp_path):
    made = prepare(options(tmp_path, dataset="builtin", num_rows=40))
    found = find_prepared("builtin", options_cache_dir=str(tmp_path / "cache"))
    assert found is not None and found.path == made.path and found.cache_hit
    opened = Prepared.open(made.path)  # as run.json records it
    assert opened.manifest == made.manifest and Prepared.open(made.folder).path == made.path
    assert len(opened.split("test")) == 2
    with pytest.raises(SqlsftError, match=r"has no split 'nope'.*train, validation, test"):
        opened.split("nope")
    assert Prepared.open(tmp_path / "nowhere") is None


def test_token_statistics_with_the_model_tokenizer_in_one_and_several_processes(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from sqlsft.data.token_stats import token_statistics

    prepared = prepare(options(tmp_path, dataset="builtin", num_rows=40, model=str(tiny_model_dir)))
    tokens = prepared.manifest["tokens"]
    assert tokens["max_length"] == 1024 and 0 < tokens["p50"] <= tokens["p95"] <= tokens["max"]
    row = prepared.load()["train"][0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    conversation = row["prompt"] + row["completion"]
    assert row["num_tokens"] == len(
        tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False)
    )

    rows = [{"prompt": row["prompt"], "completion": row["completion"]}] * 2100
    stats_one, lengths_one = token_statistics(tokenizer, rows, max_length=8, num_proc=1)
    stats_two, lengths_two = token_statistics(tokenizer, rows, max_length=8, num_proc=2)
    assert lengths_one == lengths_two == [row["num_tokens"]] * 2100 and stats_one == stats_two
    assert stats_one["over_max_length"] == 2100
