"""voicekit.analysis (see shared/design.md for this layer)."""
