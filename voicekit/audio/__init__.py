"""voicekit.audio (see shared/design.md for this layer)."""
