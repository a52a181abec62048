"""A hub model that cannot be had: found out at once, and said in one line with what to do.

Offline without ``HF_HUB_OFFLINE=1``, huggingface_hub retries every file five times with back-off
(about a minute and ~45 warning lines for ``model=deberta-v3-base``) before it gives up. One short
connection to the hub's endpoint (``HF_ENDPOINT``) tells first: when it fails, the model is looked
for in the hub cache alone (``local_files_only``), which either loads it or fails at once.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants

PROBE_SECONDS = 5.0  # a reachable hub answers a TCP connection well within this


@functools.cache
def hub_reachable() -> bool:
    """Whether a TCP connection to the hub's endpoint opens (once per process)."""
    url = urlparse(constants.ENDPOINT)
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    try:
        socket.create_connection(address, PROBE_SECONDS).close()
    except OSError:  # no DNS, no route, refused, timed out
        return False
    return True


def cache_only(location: str) -> bool:
    """Whether ``from_pretrained(location)`` must not ask the hub: a hub id while the hub cannot be
    reached (``HF_HUB_OFFLINE=1`` already keeps transformers from asking)."""
    return not Path(location).is_dir() and not constants.is_offline_mode() and not hub_reachable()


def unavailable(location: str, library_says: str) -> str:
    """The one line for a hub model ``from_pretrained`` could not load (``library_says``: its first line)."""
    if constants.is_offline_mode():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        why = f"{constants.ENDPOINT} cannot be reached"
    else:  # online: a wrong id, a gated or private model
        return f"model {location!r} cannot be loaded from the hub ({library_says}); check the id or set model.path"
    return (
        f"model {location!r} is not in the hub cache and {why}: fetch it once online (hf download {location}), "
        "then HF_HUB_OFFLINE=1 finds it; or set model.path to a local copy; or use model=deberta-v3-base-random "
        "for DeBERTaV3-base's shapes with random weights"
    )
