"""Upload a completed run's best weights, with their model card and tokenizer, to the Hugging Face Hub.

    python -m harness.publish runs/minilm/rte/aflora/seed1 --push-to-hub you/minilm-rte-aflora

What goes up is ``<run_dir>/best/`` as the run wrote it (harness/storage/best_weights.py), with one change
in the uploaded copy: ``adapter_config.json``'s ``base_model_name_or_path`` becomes the card's hub
id of the base model, since the local folder the run loaded it from means nothing to a hub reader.
``upload`` is the one call that reaches the hub (``huggingface_hub``'s ``create_repo`` and
``upload_folder``; it needs a token: ``hf auth login`` or ``HF_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCard

from harness.core.errors import HarnessError, print_user_error
from harness.storage.best_weights import BEST_DIR

log = logging.getLogger(__name__)

CARD, ADAPTER_CONFIG = "README.md", "adapter_config.json"


def upload(folder: Path, repo_id: str, private: bool) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` as one commit; return the commit's URL."""
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message="Upload from harness.publish"
    ).commit_url


def stage(best: Path, into: Path) -> Path:
    """A copy of ``best`` for the hub: the adapter's base model named by its hub id when the card has one."""
    if not (best / CARD).is_file():
        raise HarnessError(
            f"{best}: no saved weights with a model card (train the run, or rerun it with train.save_best=true)"
        )
    staged = Path(shutil.copytree(best, into / best.name))
    hub_id = ModelCard.load(staged / CARD).data.base_model
    config = staged / ADAPTER_CONFIG
    if config.exists() and hub_id:
        data = json.loads(config.read_text())
        data["base_model_name_or_path"] = hub_id
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    elif config.exists():
        log.warning("the card names no hub model: the uploaded adapter keeps its local base model path")
    return staged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.publish", description="Upload a run's best/ (weights, model card, tokenizer)."
    )
    parser.add_argument("run_dir", type=Path, help="runs/<model>/<task>/<method>/seed<seed>")
    parser.add_argument(
        "--push-to-hub", required=True, metavar="REPO", help="the hub repository, e.g. you/minilm-rte-aflora"
    )
    parser.add_argument("--private", action="store_true", help="create the repository private")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = upload(stage(args.run_dir / BEST_DIR, Path(tmp)), args.push_to_hub, args.private)
    except HarnessError as err:
        return print_user_error(err)
    log.info("uploaded %s to %s", args.run_dir / BEST_DIR, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
