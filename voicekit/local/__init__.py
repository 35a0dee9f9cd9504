"""voicekit.local (see shared/design.md for this layer)."""
