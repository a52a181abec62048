"""A completed run keeps its best epoch's weights with a model card, and they reload to the same metric."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from peft import AutoPeftModelForSequenceClassification
from safetensors import safe_open
from transformers import AutoTokenizer

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR, REPO
from harness.execution import lifecycle
from harness.inputs.models import load_model, load_tokenizer
from harness.inputs.tasks import TaskSpec
from harness.predict import evaluate_validation, inference_trainer, load_adapter, load_run, load_saved_model
from harness.show import summary
from harness.storage.best_weights import BEST_DIR, SELECTION_FILE, _finish_interrupted_save
from harness.storage.results import load_result
from harness.storage.weights_format import CLASSIFIER_HEAD, HEAD_FILE, PEFT_ADAPTER, WHOLE_MODEL, load_head, save_head
from tests.conftest import compose
from tests.tiny_models import tiny_bert, wrap_aflora

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


def debug_run(tmp_path, glue_dir, task: str, method: str, *extra: str):
    cfg = compose(
        [f"task={task}", f"method={method}", "model=tiny-bert", "debug=default", f"data.dir={glue_dir}", *extra]
    )
    assert lifecycle.run(cfg, tmp_path) == 0
    return json.loads((tmp_path / "result.json").read_text())


@pytest.mark.parametrize("method", METHODS)
def test_reloaded_weights_give_the_reported_metric_exactly(tmp_path, glue_dir, method):
    # STS-B: Pearson and Spearman are floats, so "the same to the last digit" means something.
    result = debug_run(tmp_path, glue_dir, "stsb", method)
    best = result["metrics"]["best"]
    folder = tmp_path / BEST_DIR
    assert result["weights"]["epoch"] == best["epoch"]
    assert result["weights"]["bytes"] == sum(f.stat().st_size for f in folder.glob("*.safetensors")) > 0
    # Full fine-tuning saves the whole model, the probe its classifier, every other method an adapter.
    form = {"full": WHOLE_MODEL, "head": CLASSIFIER_HEAD}.get(method, PEFT_ADAPTER)
    assert result["weights"]["format"] == form
    (weights,) = folder.glob("*.safetensors")
    assert weights.name == {WHOLE_MODEL: "model.safetensors", CLASSIFIER_HEAD: HEAD_FILE}.get(
        form, "adapter_model.safetensors"
    )
    with safe_open(weights, "pt") as f:
        keys = set(f.keys())
    assert any("classifier" in key for key in keys)  # with an adapter too (modules_to_save)
    if form == CLASSIFIER_HEAD:  # the classifier's tensors and nothing else: the backbone did not train
        assert keys == {"classifier.weight", "classifier.bias"}

    cfg, _ = load_run(tmp_path)
    task = TaskSpec.from_config(cfg.task)
    trainer = inference_trainer(load_saved_model(cfg, task, folder), cfg, task, load_tokenizer(cfg.model), tmp_path)
    reproduced = evaluate_validation(trainer, cfg, task, cfg.data.dir)
    assert reproduced == {key: best[key] for key in task.metric_keys()}


def test_model_card_says_what_the_hub_and_a_reader_need(tmp_path, glue_dir):
    result = debug_run(tmp_path, glue_dir, "rte", "aflora")
    best, metric = result["metrics"]["best"], result["metrics"]["selection_metric"]
    card = ModelCard.load(tmp_path / BEST_DIR / "README.md")
    assert card.data.library_name == "peft"
    assert card.data.datasets == ["nyu-mll/glue"] and card.data.metrics == [metric]
    assert {"aflora", "rte", "glue"} <= set(card.data.tags)
    assert card.data.base_model is None  # tiny-bert has random weights: no hub model to name
    [evaluation] = card.data.eval_results
    assert (evaluation.dataset_config, evaluation.dataset_split) == ("rte", "validation")
    assert evaluation.metric_type == metric and evaluation.metric_value == best[metric]
    assert f"epoch {best['epoch']}" in card.text and "seed 1" in card.text.lower()
    assert "python run.py task=rte model=tiny-bert method=aflora seed=1" in card.text
    assert re.search(r"Trainable parameters at this epoch: [\d,]+ \(head excluded\)", card.text)
    selection = json.loads((tmp_path / BEST_DIR / SELECTION_FILE).read_text())
    shown = summary(load_result(tmp_path / "result.json"))  # harness.show
    assert f"weights in best/ (peft-adapter, {result['weights']['bytes']:,} bytes)" in shown
    assert selection == {"epoch": best["epoch"], "step": best["step"], "metric": metric, "value": best[metric]}


def local_backbone(folder: Path) -> Path:
    """tiny-bert's random backbone saved as a local checkpoint (model.source=path)."""
    cfg = compose(["model=tiny-bert", "task=rte"])
    load_model(cfg.model, TaskSpec.from_config(cfg.task)).save_pretrained(folder)
    return folder


def test_a_local_backbone_with_a_hub_twin_is_named_both_ways(tmp_path, glue_dir):
    base = local_backbone(tmp_path / "base")
    run = tmp_path / "run"
    debug_run(run, glue_dir, "rte", "lora", "model.source=path", f"model.path={base}", "+model.hub_id=org/tiny-bert")
    card = ModelCard.load(run / BEST_DIR / "README.md")
    assert card.data.base_model == "org/tiny-bert" and "base_model:adapter:org/tiny-bert" in card.data.tags
    config = json.loads((run / BEST_DIR / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base.resolve())  # what loads offline, from any directory
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in (run / BEST_DIR).iterdir())


def test_a_saved_adapter_loads_offline_with_peft_alone_and_its_tokenizer(tmp_path, glue_dir, monkeypatch):
    """AutoPeftModelForSequenceClassification finds the base model from adapter_config.json and the
    tokenizer beside the adapter: the same logits as the harness's own reload, from another directory."""
    base = local_backbone(tmp_path / "base")
    run = tmp_path / "run"
    debug_run(run, glue_dir, "rte", "lora", "model.source=path", f"model.path={base}", "+model.hub_id=org/tiny-bert")
    cfg, _ = load_run(run)
    task = TaskSpec.from_config(cfg.task)
    expected = load_saved_model(cfg, task, run / BEST_DIR)
    monkeypatch.chdir(tmp_path / "base")
    model = AutoPeftModelForSequenceClassification.from_pretrained(run / BEST_DIR, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(run / BEST_DIR)
    pairs = (["a short premise", "another one"], ["a hypothesis", "and its pair"])
    batch = tokenizer(*pairs, return_tensors="pt", padding=True)
    assert batch["input_ids"].tolist() == load_tokenizer(cfg.model)(*pairs, padding=True)["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, expected(**batch).logits)


def test_the_card_has_a_license_and_commands_for_this_run(tmp_path, glue_dir):
    run = tmp_path / "runs" / "rte"
    run.mkdir(parents=True)
    debug_run(run, glue_dir, "rte", "aflora", "model.license=apache-2.0")
    card = ModelCard.load(run / BEST_DIR / "README.md")
    assert card.data.license == "apache-2.0" and "- License: apache-2.0" in card.text
    assert "<run_dir>" not in card.text
    assert f"python -m harness.predict {run}" in card.text  # outside the working directory: as given
    assert f'folder = "{run}/best"' in card.text and "num_labels=2" in card.text
    assert "KeyError: 'AFLORA'" in card.text  # what forgetting `import aflora` looks like


def test_without_import_aflora_peft_stops_with_the_keyerror_the_card_names(tmp_path, glue_dir, monkeypatch):
    """peft has no hook for an unknown PEFT type, so the card and the README say what the error means."""
    from peft import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    debug_run(tmp_path, glue_dir, "rte", "aflora")
    monkeypatch.delitem(PEFT_TYPE_TO_CONFIG_MAPPING, "AFLORA")  # as in a process that never imported aflora
    with pytest.raises(KeyError, match="AFLORA"):
        PeftConfig.from_pretrained(tmp_path / BEST_DIR)


def test_the_probes_card_says_only_its_classifier_is_kept_and_how_to_load_it(tmp_path, glue_dir):
    result = debug_run(tmp_path, glue_dir, "rte", "head", "+model.hub_id=org/tiny-bert")
    card = ModelCard.load(tmp_path / BEST_DIR / "README.md")
    assert card.data.library_name == "transformers" and card.data.base_model == "org/tiny-bert"
    assert not any(tag.startswith("base_model:adapter:") for tag in card.data.tags)  # not an adapter
    assert f"The classifier alone (`{HEAD_FILE}`" in card.text and f'load_file(f"{{folder}}/{HEAD_FILE}")' in card.text
    shown = summary(load_result(tmp_path / "result.json"))
    assert f"weights in best/ ({CLASSIFIER_HEAD}, {result['weights']['bytes']:,} bytes)" in shown


def test_save_best_false_leaves_no_weights(tmp_path, glue_dir):
    result = debug_run(tmp_path, glue_dir, "rte", "lora", "train.save_best=false")
    assert result["weights"] is None and not (tmp_path / BEST_DIR).exists()


def test_a_partly_frozen_aflora_adapter_reloads_bit_exactly(tmp_path):
    """Frozen adapters take the folded path, trainable ones the layer-by-layer path (different
    rounding): the reloaded model must freeze the same projections to compute the same logits."""
    model = wrap_aflora(tiny_bert(seed=0, dropout=False), r=4, trainable_projections="all")
    layers = [m for m in model.modules() if hasattr(m, "freeze_projection")]
    for layer in layers[: len(layers) // 2]:
        layer.freeze_projection("default", "A")
        layer.freeze_projection("default", "B")
    layers[-1].freeze_projection("default", "A")  # half frozen: stays on the layer-by-layer path
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "aflora_b" in name:
                param.uniform_(-0.5, 0.5)  # b starts at 0: give every adapter an effect
    model.save_pretrained(tmp_path)
    ids = torch.randint(0, 100, (4, 40), generator=torch.Generator().manual_seed(0))  # enough tokens to fold
    with torch.no_grad():
        expected = model.eval()(input_ids=ids).logits
        reloaded = load_adapter(tiny_bert(seed=0, dropout=False), tmp_path).eval()
        assert torch.equal(reloaded(input_ids=ids).logits, expected)
    frozen = {n for n, p in model.named_parameters() if "aflora_" in n and not p.requires_grad}
    assert frozen == {n for n, p in reloaded.named_parameters() if "aflora_" in n and not p.requires_grad}


def test_an_interrupted_save_puts_the_previous_weights_back(tmp_path):
    (tmp_path / "best.stale").mkdir()
    (tmp_path / "best.stale" / "adapter_model.safetensors").write_text("epoch 1")
    (tmp_path / "best.partial").mkdir()  # the save that was cut short
    _finish_interrupted_save(tmp_path)
    assert (tmp_path / BEST_DIR / "adapter_model.safetensors").read_text() == "epoch 1"
    assert not (tmp_path / "best.stale").exists() and not (tmp_path / "best.partial").exists()


@pytest.mark.integration
def test_git_keeps_weights_out_and_results_in():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0

    run = "runs/minilm/rte/aflora/seed1"
    for name in ("adapter_model.safetensors", "model.safetensors", "README.md", SELECTION_FILE):
        assert ignored(f"{run}/{BEST_DIR}/{name}")
    assert ignored(f"{run}/predictions/RTE.tsv")
    assert not ignored(f"{run}/result.json")


def test_a_resumed_run_keeps_byte_identical_best_weights(tmp_path, glue_dir, monkeypatch):
    from harness.storage.checkpoints import MarkCompleteCheckpoints

    overrides = [
        "task=rte",
        "method=aflora",
        "model=tiny-bert",
        "debug=default",
        f"data.dir={glue_dir}",
        "train.epochs=3",
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert lifecycle.run(compose(overrides), straight) == 0

    class Preempted(Exception):
        pass

    mark = MarkCompleteCheckpoints.on_save

    def mark_then_die(self, args, state, control, **kwargs):
        mark(self, args, state, control, **kwargs)
        if state.epoch >= 2:
            raise Preempted

    monkeypatch.setattr(MarkCompleteCheckpoints, "on_save", mark_then_die)
    with pytest.raises(Preempted):
        lifecycle.run(compose(overrides), resumed)
    monkeypatch.setattr(MarkCompleteCheckpoints, "on_save", mark)
    assert lifecycle.run(compose(overrides), resumed) == 0
    assert json.loads((resumed / "result.json").read_text())["runtime"]["resumed_from"]
    for name in ("adapter_model.safetensors", SELECTION_FILE, "tokenizer.json"):
        assert (resumed / BEST_DIR / name).read_bytes() == (straight / BEST_DIR / name).read_bytes(), name
    card = (straight / BEST_DIR / "README.md").read_text().replace(str(straight), str(resumed))
    assert (resumed / BEST_DIR / "README.md").read_text() == card  # the same but for the run's own folder


def test_a_probe_head_of_another_model_is_one_harness_error_naming_the_file(tmp_path):
    save_head({"classifier.weight": torch.zeros(2, 4), "pooler.extra": torch.zeros(1)}, tmp_path)
    with pytest.raises(HarnessError, match=rf"{HEAD_FILE}: tensors \['pooler.extra'\] are not parameters"):
        load_head(tiny_bert(), tmp_path)
