"""voicekit.plots (see shared/design.md for this layer)."""
