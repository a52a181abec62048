"""Errors the harness reports to the user as one line, naming what is wrong."""


class HarnessError(Exception):
    """A problem with the user's input (config, data, model path), not a bug in the harness."""


class ConfigError(HarnessError):
    """A config key has a value the harness cannot run with."""


class DataError(HarnessError):
    """A data set is missing, truncated or shaped differently from what the task expects."""
