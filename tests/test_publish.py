"""harness.publish uploads best/ with its card and tokenizer, the adapter naming its base by hub id."""

from __future__ import annotations

import json

import pytest

from harness import publish
from harness.execution import lifecycle
from harness.storage.best_weights import BEST_DIR
from tests.conftest import compose


def test_push_to_hub_uploads_weights_card_and_tokenizer_with_the_hub_base(tmp_path, glue_dir, monkeypatch, capsys):
    overrides = ["task=rte", "method=lora", "model=tiny-bert", "debug=default", "+model.hub_id=org/tiny-bert"]
    cfg = compose([*overrides, f"data.dir={glue_dir}"])
    run = tmp_path / "run"
    assert lifecycle.run(cfg, run) == 0
    sent = {}

    def offline_upload(folder, repo_id, private):  # what the hub would receive
        sent.update(repo=repo_id, private=private, files=sorted(p.name for p in folder.iterdir()))
        sent["config"] = json.loads((folder / "adapter_config.json").read_text())
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(publish, "upload", offline_upload)
    assert publish.main([str(run), "--push-to-hub", "me/tiny-rte-lora", "--private"]) == 0
    assert sent["repo"] == "me/tiny-rte-lora" and sent["private"] is True
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "tokenizer.json"} <= set(sent["files"])
    assert sent["config"]["base_model_name_or_path"] == "org/tiny-bert"
    local = json.loads((run / BEST_DIR / "adapter_config.json").read_text())
    assert local["base_model_name_or_path"] != "org/tiny-bert"  # the run's own copy is left as it was


def test_a_run_without_weights_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(publish, "upload", lambda *a: pytest.fail("nothing should be uploaded"))
    assert publish.main([str(tmp_path), "--push-to-hub", "me/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {tmp_path / BEST_DIR}: no saved weights")
