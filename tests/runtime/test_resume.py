"""Resume after a dropped socket (§5.3, §11): at a random moment, and when it cannot work."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

import voicekit as vk
from voicekit.testing import drop_connection

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [1, 2])
def test_a_drop_at_a_random_moment_is_resumed_and_the_log_stays_continuous(
    agent, tmp_path, seed: int
) -> None:
    moment = random.Random(seed).uniform(0.3, 5.0)
    user = vk.ScriptedUser(
        [vk.Say("hello can you hear me"), vk.Say("what time is it")], gap=(0.3, 0.3)
    )
    s = vk.Session(url=agent.url, greeting="Hi.", audio_in=user, audio_out="null", log_dir=tmp_path)
    s.start()
    first_id = s.session_id
    dropper = threading.Timer(moment, drop_connection, (agent, first_id))
    dropper.start()
    finished = s.wait(60)
    dropper.join()
    time.sleep(0.3)
    log = s.stop()
    ev = log.events

    gaps = log.of_type("input.gap")
    resumed = [g for g in gaps if g.get("reason") == "resumed"]
    assert len(resumed) == 1, ev[["t", "dir", "type"]].to_string()
    assert s.session_id == first_id and log.of_type("session.stop")[-1]["status"] == "ended"
    assert log.of_type("session.resume", direction="send")
    # the conversation went on: every line was said and the user was heard after the drop
    assert finished and user.error is None
    assert len(log.of_type("user.utterance")) == 2
    drop_t = log.of_type("connection.closed")[0]["t"]
    assert any(e["t"] > drop_t for e in log.of_type("transcript.user"))
    # one clock, no holes: events in time order, both tracks span the whole session
    assert ev.t.is_monotonic_increasing
    assert abs(len(log.user_audio) / 24000 - log.duration) < 0.2
    assert len(log.agent_audio) <= len(log.user_audio) + 24000
    # the user track holds each utterance where its ground truth says, except for what the
    # user said while the socket was down (the logged input gap): that was never sent
    holes = [(g["t"] - g["duration"], g["t"]) for g in gaps]
    for u in log.of_type("user.utterance"):
        heard_from = max([u["start"], *(end for a, end in holes if a <= u["start"] < end)])
        assert heard_from < u["end"] - 0.2, (u, holes)
        start = round(heard_from * 24000)
        assert np.abs(log.user_audio[start : start + 2400]).max() > 300, (u, holes)


def test_a_resume_that_cannot_work_ends_in_error_with_the_log_closed(tmp_path) -> None:
    agent = vk.local.serve(profile="fast", behaviour={"resume_fails": False})
    port = int(agent.url.split(":")[2].split("/")[0])
    s = vk.Session(
        url=agent.url,
        on_resume_failure="error",  # "restart" (the default) would start over: test_restart
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    agent.stop()  # the agent is gone, and with it the session...
    with vk.local.serve(
        port=port, profile="fast", behaviour={"resume_fails": False}
    ):  # ...a new one does not know it
        deadline = time.monotonic() + 20
        while s.status != "error" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.status == "error"
        assert "session_not_found" in str(s.last_error) or "not found" in str(s.last_error)
        log = s.stop()
    assert log.of_type("session.stop")[-1]["status"] == "error"
    assert log.of_type("session.resume", direction="send")
    assert log.of_type("error")[-1]["message"].startswith("resume failed")
