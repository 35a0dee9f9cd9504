"""voicekit.protocol (see shared/design.md for this layer)."""
