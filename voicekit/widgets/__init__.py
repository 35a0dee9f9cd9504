"""voicekit.widgets: notebook faces over the session (see docs/architecture.md).

``AgentPanel`` imports ipywidgets only when constructed; ``BrowserAudio`` (an anywidget)
is imported on first use.
"""

from voicekit.widgets.panel import AgentPanel

__all__ = ["AgentPanel", "BrowserAudio"]


def __getattr__(name: str) -> object:
    if name == "BrowserAudio":
        from voicekit.widgets.browser_audio import BrowserAudio

        return BrowserAudio
    raise AttributeError(f"module 'voicekit.widgets' has no attribute {name!r}")
