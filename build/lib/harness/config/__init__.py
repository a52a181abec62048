"""Composing and checking a run's config: the typed schema (``schema``), the composition run.py
does (``compose``), the one check of it (``validation``) and schedule lengths (``lengths``)."""
