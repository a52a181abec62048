"""Loading a GLUE copy in the hub layout, checking it, tokenising it once."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.errors import DataError
from harness.inputs.data import load_raw_splits, take_examples, tokenize_splits
from harness.inputs.models import load_tokenizer
from harness.inputs.tasks import TaskSpec
from tests.conftest import compose
from tests.glue_fixture import TASKS, write_glue


def spec(task: str) -> TaskSpec:
    return TaskSpec.from_config(compose([f"task={task}"]).task)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(compose(["model=tiny-bert"]).model)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_loads_every_split_of_every_task(glue_dir, task):
    raw = load_raw_splits(spec(task), str(glue_dir))
    assert list(raw) == ["train", *TASKS[task][2]]
    assert len(raw["train"]) == 48


def test_pair_and_single_sentence_tokenisation(glue_dir, tokenizer):
    for task, n_sep in (("rte", 2), ("sst2", 1)):
        raw = load_raw_splits(spec(task), str(glue_dir))
        enc = tokenize_splits(raw, tokenizer, spec(task), max_length=64, pad_to_max_length=False)
        ids = enc["train"][0]["input_ids"]
        assert ids.count(tokenizer.sep_token_id) == n_sep
        assert enc["train"][0]["labels"] == raw["train"][0]["label"]


def test_dynamic_padding_leaves_lengths_alone_and_max_length_pads(glue_dir, tokenizer):
    raw = load_raw_splits(spec("rte"), str(glue_dir))
    dynamic = tokenize_splits(raw, tokenizer, spec("rte"), max_length=64, pad_to_max_length=False)
    padded = tokenize_splits(raw, tokenizer, spec("rte"), max_length=64, pad_to_max_length=True)
    lengths = {len(x) for x in dynamic["train"]["input_ids"]}
    assert len(lengths) > 1 and max(lengths) < 64
    assert {len(x) for x in padded["train"]["input_ids"]} == {64}


def test_truncates_to_max_length(glue_dir, tokenizer):
    raw = load_raw_splits(spec("rte"), str(glue_dir))
    enc = tokenize_splits(raw, tokenizer, spec("rte"), max_length=8, pad_to_max_length=False)
    assert max(len(x) for x in enc["train"]["input_ids"]) == 8


def test_regression_labels_are_floats(glue_dir, tokenizer):
    raw = load_raw_splits(spec("stsb"), str(glue_dir))
    enc = tokenize_splits(raw, tokenizer, spec("stsb"), max_length=32, pad_to_max_length=False)
    assert isinstance(enc["train"][0]["labels"], float)
    assert enc["train"]["labels"] == pytest.approx(raw["train"]["label"])


def test_second_tokenisation_comes_from_the_cache(glue_dir, tokenizer):
    raw = load_raw_splits(spec("mrpc"), str(glue_dir))
    first = tokenize_splits(raw, tokenizer, spec("mrpc"), max_length=32, pad_to_max_length=False)
    again = load_raw_splits(spec("mrpc"), str(glue_dir))
    second = tokenize_splits(again, tokenizer, spec("mrpc"), max_length=32, pad_to_max_length=False)
    assert first["train"].cache_files and first["train"].cache_files == second["train"].cache_files
    other = tokenize_splits(again, tokenizer, spec("mrpc"), max_length=16, pad_to_max_length=False)
    assert other["train"].cache_files != first["train"].cache_files


def test_take_first():
    ds = pa.table({"x": list(range(10))})
    from datasets import Dataset

    d = Dataset(ds)
    assert take_examples(d, 3)["x"] == [0, 1, 2]
    assert len(take_examples(d, None)) == 10 and len(take_examples(d, 50)) == 10


def test_take_examples_with_a_sample_seed_spreads_over_an_ordered_split():
    from datasets import Dataset

    d = Dataset(pa.table({"x": list(range(1000))}))  # ordered by source, as STS-B's training set
    sample = take_examples(d, 100, sample_seed=0)["x"]
    assert len(set(sample)) == 100 and sample == sorted(sample)
    assert take_examples(d, 100, sample_seed=0)["x"] == sample  # the same examples for every run
    assert take_examples(d, 100, sample_seed=1)["x"] != sample
    assert 30 <= sum(x >= 500 for x in sample) <= 70  # both halves, unlike the first 100


# --- bad data is refused with a message that names the culprit ---------------------------------


def test_missing_task_names_the_file(tmp_path):
    write_glue(tmp_path, ["rte"])
    with pytest.raises(DataError, match=r"cola/train-\*\.parquet"):
        load_raw_splits(spec("cola"), str(tmp_path))


def test_missing_split_names_the_split(tmp_path):
    write_glue(tmp_path, ["mnli"])
    (tmp_path / "mnli" / "validation_mismatched-00000-of-00001.parquet").unlink()
    with pytest.raises(DataError, match="validation_mismatched"):
        load_raw_splits(spec("mnli"), str(tmp_path))


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_raw_splits(spec("rte"), str(tmp_path / "nowhere"))


def test_truncated_parquet_names_the_file(tmp_path):
    write_glue(tmp_path, ["rte"])
    path = tmp_path / "rte" / "train-00000-of-00001.parquet"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"rte/train-00000-of-00001\.parquet: not a readable parquet"):
        load_raw_splits(spec("rte"), str(tmp_path))


def test_wrong_columns_are_named(tmp_path):
    write_glue(tmp_path, ["rte"])
    path = tmp_path / "rte" / "validation-00000-of-00001.parquet"
    pq.write_table(pa.table({"text": ["a b"], "label": [0]}), path)
    with pytest.raises(DataError, match=r"missing column\(s\) \['sentence1', 'sentence2'\]"):
        load_raw_splits(spec("rte"), str(tmp_path))


def test_labels_outside_the_range_are_refused(tmp_path):
    write_glue(tmp_path, ["rte"])
    path = tmp_path / "rte" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[3] = 7
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)), path)
    with pytest.raises(DataError, match=r"rte/train: label value\(s\) \[7\] outside 0\.\.1"):
        load_raw_splits(spec("rte"), str(tmp_path))
