"""Baseline methods as harness builders over PEFT: full, lora, adalora, vera, elora.

Each module registers one builder with ``harness.execution.methods.register_method``; the method's yaml in
``conf/method/`` names the module, so the harness imports only the method it runs.
"""
