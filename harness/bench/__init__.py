"""Side-by-side speed benchmark of the methods: ``python -m harness.bench``.

- ``rows.py``: one model + optimizer + callbacks per method, assembled as a run is (``harness/execution/assembly.py``);
- ``timing.py``: interleaved step timing (round-robin over rows), memory, bookkeeping cost;
- ``flops.py``: forward linear-layer multiply-adds per token, read off the model's modules;
- ``report.py``: ratios, PASS/FAIL targets, the Markdown and JSON report;
- ``epoch.py``: one real RTE epoch, padded to 256 as the reference code vs dynamic padding.
"""
