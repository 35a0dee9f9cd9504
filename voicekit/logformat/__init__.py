"""voicekit.logformat (see shared/design.md for this layer)."""
