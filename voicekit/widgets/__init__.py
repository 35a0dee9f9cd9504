"""voicekit.widgets: notebook faces over the session (see shared/design.md).

``AgentPanel`` imports ipywidgets only when constructed.
"""

from voicekit.widgets.panel import AgentPanel

__all__ = ["AgentPanel"]
