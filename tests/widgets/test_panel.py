"""vk.AgentPanel without a browser: real widgets, a real session, the stand-in agent.

Outside a kernel nothing ticks by itself, so the tests call ``panel.refresh()``; a widget
change is applied at once (the 300 ms debounce needs the kernel's loop, tested last).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

import voicekit as vk

pytestmark = pytest.mark.slow


def _script() -> vk.ScriptedUser:
    return vk.ScriptedUser(
        [vk.Say("What trains go to London tomorrow?"), vk.Pause(1.5), vk.Say("Thank you.")]
    )


def _until(panel: vk.AgentPanel, predicate: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        panel.refresh()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; status {panel.status.value}; {panel.message.value}")


def _sent_updates(log: vk.SessionLog) -> list[dict[str, Any]]:
    return [e["session"] for e in log.of_type("session.update", direction="send")][1:]


def _all_state(widget: Any) -> str:
    """Every trait of every widget in the panel, as the front-end and notebook would see it."""
    seen: list[dict[str, Any]] = []

    def walk(w: Any) -> None:
        seen.append(w.get_state())
        for child in getattr(w, "children", ()):
            walk(child)

    walk(widget)
    return json.dumps(seen, default=str)


def test_panel_runs_a_conversation_and_applies_changes_live(agent, tmp_path) -> None:
    panel = vk.AgentPanel(
        url=agent.url, audio_in=_script(), audio_out="null", log_dir=tmp_path, voice="alba"
    )
    assert panel.audio_input.value == "given" and panel.backend.value == "url"
    assert panel.turn_detection() == vk.TurnDetection()  # untouched sliders stay unset
    panel.start_button.click()  # wait=False: returns at once, the tick shows the progress
    _until(panel, lambda: panel.session.status == "ready")
    assert panel.start_button.description == "Stop"
    assert panel.backend.disabled and panel.audio_input.disabled

    panel.min_silence.value = 450
    panel.max_silence.value = 400  # below min: min follows it down
    assert panel.min_silence.value == 400
    panel.vad_threshold.value = 0.7
    panel.interrupt_response.value = False
    panel.keyterms.value = ["Paddington"]
    # the agent applied them (its own session state, not just what we sent)
    held = agent.state.sessions[panel.session.session_id]

    def applied() -> bool:
        td = held.config.turn_detection
        return (td.min_silence, td.max_silence, td.vad_threshold, td.interrupt_response) == (
            400,
            400,
            0.7,
            False,
        ) and tuple(held.config.keyterms or ()) == ("Paddington",)

    _until(panel, applied, 5)

    # a voice change mid-session is offered as a restart, never sent
    panel.voice.value = "ivy"
    assert panel.restart_button.layout.display != "none"
    assert "Restart" in panel.message.value

    assert panel.session.wait(60)
    _until(panel, lambda: not panel.state.agent_speaking and panel.state.fto, 20)
    log = panel.stop()
    assert panel.start_button.description == "Start"
    assert "ended" in panel.status.value

    sent = _sent_updates(log)
    assert sent[0] == {"input": {"turn_detection": {"min_silence": 450}}}
    assert all("voice" not in json.dumps(s) for s in sent)
    epochs = log.of_type("config.epoch")
    assert [e["epoch"] for e in epochs] == list(range(len(sent) + 1))
    assert epochs[-1]["patch"] == {"input": {"keyterms": ["Paddington"]}}

    # the views followed the conversation
    heard = " ".join(e["text"] for e in log.of_type("transcript.user"))
    assert heard and heard.split()[0] in panel.transcript.value
    assert "agent" in panel.transcript.value and "epoch 1: min_silence=450" in (
        panel.transcript.value
    )
    m = panel.state.metrics()
    assert m["turns"] >= 1 and 0 < m["fto_median"] < 5
    assert panel.timeline.value[:4] == b"\x89PNG"

    # save and report work on the saved bundle
    archive = panel.save_log()
    report = panel.report()
    assert archive.exists() and archive.suffix == ".zip"
    assert report.read_text().count("<img") >= 1
    assert report.name in panel.files.value


def test_restart_with_a_new_voice_starts_a_new_session(agent, tmp_path) -> None:
    panel = vk.AgentPanel(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    first = panel.start()
    panel.voice.value = "ivy"
    second = panel.restart()
    _until(panel, lambda: second.status == "ready")
    assert first.status == "ended" and second is not first
    assert second.config.voice == "ivy"
    ready = panel.stop().of_type("session.ready")[0]
    assert ready["config"]["output"]["voice"] == "ivy"
    assert panel.restart_button.layout.display == "none"


def test_api_key_is_used_but_never_kept_in_widget_state(tmp_path) -> None:
    key = "vk-test-secret-7f3a91"
    with vk.local.serve(profile="fast", api_key=key) as guarded:
        panel = vk.AgentPanel(url=guarded.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        assert panel.api_key.layout.display != "none"  # a URL may need a key too
        panel.api_key.value = key  # what the front-end sends on Enter
        assert panel.api_key.value == ""
        assert "hidden" in panel.api_key.placeholder
        session = panel.start()
        assert session.status == "ready"  # the guarded agent accepted the key
        log = panel.stop()
    assert key not in _all_state(panel.widget)
    assert key not in repr(panel) and key not in repr(panel.session)
    for path in log.path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_bad_input_is_reported_in_the_panel(agent, tmp_path) -> None:
    panel = vk.AgentPanel(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    panel.audio_input.value = "wav"
    panel.wav_path.value = str(tmp_path / "missing.wav")
    panel.start_button.click()
    assert "WAV file" in panel.message.value and "missing.wav" in panel.message.value
    assert isinstance(panel.last_error, vk.ConfigError)
    assert panel.session is None and panel.start_button.description == "Start"

    panel.audio_input.value = "null"
    panel.backend.value = "url"
    panel.url.value = "ws://127.0.0.1:9/v1/ws"  # nothing listens on the discard port
    panel.start_button.click()
    _until(panel, lambda: panel.session.status == "error", 15)
    assert "cannot connect" in panel.status.value and "check the URL" in panel.status.value
    assert panel.start_button.description == "Start"

    with pytest.raises(vk.ConfigError, match="voic"):
        vk.AgentPanel(voic="alba")
    with pytest.raises(vk.ConfigError, match="timeline_fps"):
        vk.AgentPanel(timeline_fps=60)


def test_in_a_kernel_loop_changes_are_debounced_and_views_tick(agent, tmp_path) -> None:
    """With a running loop (as in ipykernel) slider moves collapse into one update."""

    async def main() -> vk.SessionLog:
        panel = vk.AgentPanel(url=agent.url, audio_in=_script(), audio_out="null", log_dir=tmp_path)
        panel.start()
        for value in (0.3, 0.35, 0.4, 0.45, 0.55):  # a drag across the slider
            panel.vad_threshold.value = value
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        # the tick (not the test) folded the events into the views
        for _ in range(200):
            if panel.state.fto:
                break
            await asyncio.sleep(0.1)
        assert panel.state.fto, panel.transcript.value
        assert "you" in panel.transcript.value
        log = panel.stop()
        return log

    log = asyncio.run(main())
    sent = _sent_updates(log)
    assert sent == [{"input": {"turn_detection": {"vad_threshold": 0.55}}}]


def test_hiding_one_field_hides_no_other() -> None:
    """The local backend hides the key and URL fields; sliders and meter stay visible."""
    panel = vk.AgentPanel(backend="local", audio_in="null", audio_out="null")
    assert panel.api_key.layout.display == "none" and panel.url.layout.display == "none"
    for name in ("vad_threshold", "min_silence", "max_silence", "level", "audio_input"):
        assert getattr(panel, name).layout.display != "none", name
    assert (panel.vad_threshold.value, panel.min_silence.value, panel.max_silence.value) == (
        0.5,
        600,
        1500,
    )


def test_audio_given_as_an_array_or_wav_paths_is_kept(tmp_path) -> None:
    import numpy as np

    samples = np.zeros(2400, np.int16)
    panel = vk.AgentPanel(audio_in=samples, audio_out=tmp_path / "agent.wav")
    assert panel.audio_input.value == "given" and panel.audio_output.value == "given"
    kw = panel.session_kwargs()
    assert kw["audio_in"] is samples and str(kw["audio_out"]).endswith("agent.wav")
    panel = vk.AgentPanel(audio_in=str(tmp_path / "user.wav"), audio_out="null")
    assert panel.audio_input.value == "wav" and panel.wav_path.value.endswith("user.wav")


def test_browser_audio_is_an_audio_choice_shown_in_the_panel() -> None:
    panel = vk.AgentPanel(audio_in="null", audio_out="null")
    assert panel.browser_box.children == ()
    panel.audio_input.value = "browser"
    b = panel.browser_box.children[0]
    assert isinstance(b, vk.BrowserAudio)
    panel.audio_output.value = "browser"
    kw = panel.session_kwargs()
    assert kw["audio_in"] is b and kw["audio_out"] is b

    mine = vk.BrowserAudio()
    panel = vk.AgentPanel(audio_in=mine, audio_out=mine)
    assert (panel.audio_input.value, panel.audio_output.value) == ("browser", "browser")
    assert panel.browser_box.children == (mine,)


# -- stored agents, transcription mode, silent replies, restarts --------------------------------
def test_stored_agents_are_offered_and_the_session_binds_to_the_chosen_one(
    voicekit_agent_factory, tmp_path
) -> None:
    twin = voicekit_agent_factory(profile="fast")
    empty = vk.AgentPanel(url=twin.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    assert empty.stored_agent.layout.display == "none"  # no stored agents: inline only
    assert empty.session_kwargs().get("agent_id") is None

    made = vk.agents.create(name="Booker", system_prompt="You book tables.", url=twin.url)
    panel = vk.AgentPanel(url=twin.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    assert panel.stored_agent.layout.display != "none"
    assert [v for _, v in panel.stored_agent.options] == ["", made.id]
    assert panel.stored_agent.options[0][0] == "inline config"
    assert "Booker" in panel.stored_agent.options[1][0]
    given = vk.AgentPanel(url=twin.url, agent_id=made.id, audio_in="null", audio_out="null")
    assert given.stored_agent.value == made.id and given.voice.disabled  # preselected
    panel.stored_agent.value = made.id
    assert panel.voice.disabled and panel.greeting.disabled
    kw = panel.session_kwargs()
    assert kw["agent_id"] == made.id and "voice" not in kw and "greeting" not in kw

    panel.transcription_mode.value = "max_accuracy"
    session = panel.start()
    assert session.agent_id == made.id
    panel.transcription_mode.value = "min_latency"  # applied live
    sid = session.session_id
    _until(
        panel,
        lambda: (
            sid in twin.state.sessions
            and twin.state.sessions[sid].config.transcription_mode == "min_latency"
        ),
        5,
    )
    held = twin.state.sessions[sid]
    log = panel.stop()
    sent = log.of_type("session.update", direction="send")
    assert sent[0]["session"] == {"agent_id": made.id}
    assert sent[1]["session"] == {"input": {"transcription_mode": "max_accuracy"}}
    assert sent[-1]["session"] == {"input": {"transcription_mode": "min_latency"}}
    assert held.config.system_prompt == "You book tables."  # the stored agent's

    panel.stored_agent.value = ""  # back to inline: the voice is the panel's again
    assert not panel.voice.disabled and panel.session_kwargs()["voice"] == panel.voice.value
    vk.agents.delete(made.id, url=twin.url)
    assert panel.refresh_agents() == [] and panel.stored_agent.layout.display == "none"
    with pytest.raises(vk.ConfigError, match="transcription_mode"):
        vk.AgentPanel(transcription_mode="fastest", audio_in="null")


def test_a_silent_reply_is_flagged_live_in_the_panel(voicekit_agent_factory, tmp_path) -> None:
    # a brain that answers with no words: a reply of pure silence, completed (live
    # observations: how a failing stored-agent LLM shows)
    twin = voicekit_agent_factory(profile="fast", brain=lambda history, tools: "")
    panel = vk.AgentPanel(url=twin.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    session = panel.start()
    session.say("anything")
    _until(panel, lambda: panel.state.silent, 20)
    log = panel.stop()
    silent = log.of_type("reply.silent")
    assert len(silent) == 1 and silent[0]["tool_call"] is False
    reply_id = silent[0]["reply_id"]
    assert reply_id == log.of_type("reply.done")[-1]["reply_id"]
    assert f"reply {reply_id} was silent" in panel.transcript.value
    assert "vk-warning" in panel.transcript.value
    assert "silent replies" in panel.metrics.value and panel.state.metrics()["silent_replies"] == 1


def test_a_spoken_reply_is_not_flagged(agent, tmp_path) -> None:
    from voicekit.testing import wait_for_event

    panel = vk.AgentPanel(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    session = panel.start()
    session.say("Say: every word is heard.")
    done = wait_for_event(session, "reply.done", timeout=20)
    _until(panel, lambda: any("heard" in line.text for line in panel.state.lines), 10)
    log = panel.stop()
    assert done["status"] == "completed"
    assert not log.of_type("reply.silent") and not panel.state.silent
    assert "was silent" not in panel.transcript.value


def test_a_restart_after_a_failed_resume_shows_in_the_status_line(tmp_path) -> None:
    from voicekit.testing import drop_connection

    with vk.local.serve(profile="fast") as observed:  # resume fails, as on the hosted service
        panel = vk.AgentPanel(url=observed.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        session = panel.start()
        first = session.session_id
        drop_connection(observed, first)
        _until(panel, lambda: panel.state.restarts and session.status == "ready", 30)
        assert "restarted: resume failed" in panel.status.value
        assert session.session_id != first
        assert "restarted: resume failed" in panel.transcript.value
        panel.stop()
