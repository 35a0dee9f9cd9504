"""The version of voicekit (single source, read by pyproject)."""

__version__ = "0.1.0.dev0"
