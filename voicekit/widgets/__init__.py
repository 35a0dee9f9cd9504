"""voicekit.widgets (see shared/design.md for this layer)."""
