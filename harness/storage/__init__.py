"""The run directory and its files: identity and fingerprint (``identity``), the directory's lock,
resume and clean-up (``rundir``), checkpoints and their manifests, result.json (``results``,
``result_schema``, ``typed_json``), the best epoch's weights, the model card and per-epoch predictions."""
