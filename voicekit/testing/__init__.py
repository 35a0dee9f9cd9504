"""voicekit.testing (see shared/design.md for this layer)."""
