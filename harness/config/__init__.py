"""Composing and checking a run's config: the typed schema (``schema``), the composition run.py
does (``compose``), the one check of it (``validation``), schedule lengths (``lengths``) and the
budget a run trains under (``budget``)."""
