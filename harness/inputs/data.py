"""GLUE data: load the splits (hub or a local copy in the hub layout), check them, tokenise once.

The local layout is the hub's parquet export: ``<dir>/<task>/<split>-*.parquet``. Tokenised
splits are cached by the datasets library under a fingerprint of (source data, tokenizer, task,
max length, padding), so a second run of the same task starts training without re-tokenising.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, load_dataset
from datasets.fingerprint import Hasher
from transformers import PreTrainedTokenizerBase

from harness.core.cli_errors import write_error
from harness.core.errors import ConfigError, DataError
from harness.inputs.heldout import HELDOUT_TRAIN_EXAMPLES, heldout_indices, holds_out_training_examples
from harness.inputs.tasks import SELECTION_SPLIT, TaskSpec

log = logging.getLogger(__name__)

TOKENISER_CACHE_VERSION = 1  # bump when encode() changes, so old caches are not reused


def split_files(data_dir: Path, task: str, split: str) -> list[Path]:
    """The parquet shards of one split, named as the hub names them:
    ``<dir>/<task>/<split>-<i>-of-<n>.parquet`` (five digits each)."""
    pattern = re.compile(rf"^{re.escape(split)}-\d{{5}}-of-\d{{5}}\.parquet$")
    return sorted(p for p in (Path(data_dir) / task).glob(f"{split}-*.parquet") if pattern.match(p.name))


def _check_shards(data_dir: Path, task: str, split: str, files: list[Path]) -> None:
    """Refuse a file that looks like a shard but is not named as one (a stray backup would be
    merged into the split), and a split with shards missing."""
    strays = sorted(set((Path(data_dir) / task).glob(f"{split}-*.parquet")) - set(files))
    if strays:
        raise DataError(
            f"{strays[0]}: not a shard of the {task} {split} split (the hub names them "
            f"{split}-00000-of-00001.parquet); move it out of {strays[0].parent}"
        )
    counts = {int(p.stem.rsplit("-", 1)[1]) for p in files}
    indices = sorted(int(p.stem.split("-")[-3]) for p in files)
    if len(counts) != 1 or indices != list(range(next(iter(counts)))):
        raise DataError(f"{Path(data_dir) / task}: the {split} shards {[p.name for p in files]} are not one whole set")


def required_splits(task: TaskSpec) -> list[str]:
    return ["train", *task.eval_splits]


def load_raw_splits(
    task: TaskSpec, data_dir: str | None, hub_name: str = "nyu-mll/glue", splits: list[str] | None = None
) -> DatasetDict:
    """``splits`` (default: train and every evaluation split) of ``task``, checked against the task
    spec; test splits keep GLUE's placeholder labels (-1)."""
    splits = splits or required_splits(task)
    if data_dir:
        raw = _load_local(task, Path(data_dir), splits)
    else:
        raw = _load_hub(hub_name, task.name)
        missing = [s for s in splits if s not in raw]
        if missing:
            raise DataError(f"{hub_name}/{task.name} has no split(s) {missing}; it has {list(raw)}")
        raw = DatasetDict({s: raw[s] for s in splits})
    for split, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"{task.name}/{split}: the split has no rows")
        _check_columns(task, ds.column_names, f"{task.name}/{split}")
        if not split.startswith("test"):
            _check_labels(task, ds, f"{task.name}/{split}")
    return raw


def _load_local(task: TaskSpec, data_dir: Path, splits: list[str]) -> DatasetDict:
    if not data_dir.is_dir():
        raise DataError(f"data.dir (GLUE_DIR) {str(data_dir)!r} is not a directory")
    data_files: dict[str, list[str]] = {}
    for split in splits:
        files = split_files(data_dir, task.name, split)
        if not files:
            raise DataError(
                f"{data_dir / task.name / (split + '-*.parquet')}: no such file "
                f"(data.dir / GLUE_DIR = {str(data_dir)!r} lacks the {task.name} {split} split)"
            )
        _check_shards(data_dir, task.name, split, files)
        if sum(_check_parquet(task, f) for f in files) == 0:
            raise DataError(f"{task.name}/{split}: the split has no rows ({', '.join(str(f) for f in files)})")
        data_files[split] = [str(f) for f in files]
    try:
        return load_dataset("parquet", data_files=data_files)
    except Exception as err:  # a page that does not decode: datasets wraps arrow's error
        if write_error(err) is not None:
            raise  # the cache's disk is full: not the data's fault
        cause = err.__cause__ or err
        raise DataError(
            f"{data_dir / task.name}: the parquet files of {', '.join(splits)} do not read "
            f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"
        ) from None


def _load_hub(hub_name: str, task: str) -> DatasetDict:
    try:
        return load_dataset(hub_name, task)
    except Exception as err:  # offline without a cached copy, no network, no such data set
        raise DataError(
            f"{hub_name}/{task} cannot be loaded from the hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); set GLUE_DIR (data.dir) to a local copy"
        ) from None


def _check_parquet(task: TaskSpec, path: Path) -> int:
    """Fail on a truncated file or wrong columns here, naming the file, not deep inside arrow;
    return its number of rows."""
    try:
        metadata = pq.read_metadata(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable parquet file ({err})") from err
    _check_columns(task, metadata.schema.to_arrow_schema().names, str(path))
    return metadata.num_rows


def _check_columns(task: TaskSpec, columns: list[str], where: str) -> None:
    missing = [c for c in (*task.text_fields, "label") if c not in columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} for task {task.name!r}; it has {columns}")


def _check_labels(task: TaskSpec, ds: Dataset, where: str) -> None:
    """Classification: integer class ids 0..num_labels-1. Regression: numbers, no NaN, within the
    task's label_range (STS-B: 0..5, so scores in percent are refused)."""
    column = ds.data.column("label")
    kind = column.type
    if task.is_regression:
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            raise DataError(f"{where}: labels of type {kind}; regression task {task.name!r} needs numbers")
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)
        if column.null_count or np.isnan(values).any():
            raise DataError(f"{where}: {int(column.null_count + np.isnan(values).sum())} missing or NaN label(s)")
        low, high = task.label_range or (-np.inf, np.inf)
        if values.min() < low or values.max() > high:
            raise DataError(
                f"{where}: labels span {values.min():g}..{values.max():g}, outside {low:g}..{high:g} "
                f"for task {task.name!r}"
            )
        return
    if not pa.types.is_integer(kind):
        raise DataError(f"{where}: labels of type {kind}; task {task.name!r} needs integer class ids")
    if column.null_count:
        raise DataError(f"{where}: {column.null_count} missing label(s)")
    labels = set(ds.unique("label"))
    bad = sorted(v for v in labels if not 0 <= v < task.num_labels)
    if bad:
        raise DataError(f"{where}: label value(s) {bad[:5]} outside 0..{task.num_labels - 1} for task {task.name!r}")


def tokenize_splits(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    max_length: int,
    pad_to_max_length: bool,
) -> DatasetDict:
    """input_ids/attention_mask(/token_type_ids) + labels for every split, cached on disk."""
    padding = "max_length" if pad_to_max_length else False
    special = tokenizer.num_special_tokens_to_add(pair=len(task.text_fields) == 2)
    if max_length < special + len(task.text_fields):  # every text keeps at least one token
        raise ConfigError(
            f"data.max_seq_length = {max_length} leaves no room for the text: the tokenizer adds {special} "
            f"special tokens to each {task.name} example; use at least {special + len(task.text_fields)}"
        )

    def encode(batch: dict) -> dict:
        texts = [batch[field] for field in task.text_fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_length, padding=padding)
        enc["labels"] = [float(x) for x in batch["label"]] if task.is_regression else batch["label"]
        return enc

    out = {}
    for split, ds in raw.items():
        fingerprint = Hasher.hash(
            (
                ds._fingerprint,
                tokenizer.name_or_path,
                type(tokenizer).__name__,
                len(tokenizer),
                task.text_fields,
                task.is_regression,
                max_length,
                pad_to_max_length,
                TOKENISER_CACHE_VERSION,
            )
        )
        out[split] = ds.map(
            encode,
            batched=True,
            remove_columns=ds.column_names,
            new_fingerprint=fingerprint,
            desc=f"Tokenising {task.name}/{split}",
        )
    return DatasetDict(out)


def take_examples(ds: Dataset, n: int | None, sample_seed: int | None = None) -> Dataset:
    """``n`` examples (all when ``n`` is None or larger than the split): the first ``n``, or with
    ``sample_seed`` a random sample of ``n`` drawn with that seed, kept in the split's order.

    A sample, not the first rows, where a split is ordered by source (STS-B's training set runs
    captions, then news, then forums); the seed is the protocol's, not the run's, so every method
    and every run seed train on the same examples.
    """
    if n is None or n >= len(ds):
        return ds
    if n <= 0:
        raise DataError(f"a sample limit must be positive, got {n}")
    if sample_seed is None:
        return ds.select(range(n))
    chosen = np.random.default_rng(sample_seed).choice(len(ds), size=n, replace=False)
    return ds.select(np.sort(chosen))


# --- data.protocol=heldout: the fixed split is harness/inputs/heldout.py's -------------------------------


def reported_set(ds: Dataset, task: TaskSpec) -> Dataset:
    """The part of a validation split ``task``'s protocol reports: all of it, or the half it does not select on."""
    if task.protocol != "heldout" or holds_out_training_examples(task):
        return ds
    return ds.select(heldout_indices(len(ds), len(ds) // 2)[1])


def protocol_splits(splits: DatasetDict | dict[str, Dataset], task: TaskSpec) -> dict[str, Dataset]:
    """``train`` and every set of ``task.evaluated_splits`` as ``task.protocol`` defines them.

    paper: the training split and the validation split(s) as they are. heldout: the selection
    split last, taken from the training split (which loses those examples) or from the first
    validation split, or the one ``task.select_on`` names (which keeps the other half, as every
    other validation split does).
    """
    train = splits["train"]
    out = {"train": train, **{s: reported_set(splits[s], task) for s in task.eval_splits}}
    if task.protocol != "heldout":
        return out
    if holds_out_training_examples(task):
        selection, rest = heldout_indices(len(train), HELDOUT_TRAIN_EXAMPLES)
        out["train"], out[SELECTION_SPLIT] = train.select(rest), train.select(selection)
    else:
        source = splits[task.selection_source]
        out[SELECTION_SPLIT] = source.select(heldout_indices(len(source), len(source) // 2)[0])
    return {"train": out.pop("train"), **{s: out[s] for s in task.evaluated_splits}}
