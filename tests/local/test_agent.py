"""The stand-in agent on a real socket, driven by a raw protocol client."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request

import numpy as np
import pytest
from rawclient import RawClient, run, silence, speech

from voicekit.local.brain import ToolRequest

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_greeting_turn_and_tool_round_trip(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(
            agent.url,
            {"greeting": "Hello, how can I help?", "output": {"voice": "ivy"}, "tools": [WEATHER]},
        )
        started = await c.wait_for("reply.started")
        done = await c.wait_for("reply.done")
        assert done["status"] == "completed" and done["reply_id"] == started["reply_id"]
        greeting = c.of("transcript.agent")[0]
        assert greeting["text"] == "Hello, how can I help?" and greeting["interrupted"] is False
        deltas = [e for e in c.of("transcript.agent.delta") if e["reply_id"] == started["reply_id"]]
        assert [d["delta"] for d in deltas][:2] == ["Hello", "how"]
        assert deltas[0]["start_ms"] >= 250  # replies start with ~250 ms of silence
        samples = c.reply_samples(started["reply_id"])
        assert 1.0 < samples / 24000 < 4.0
        chunks = [e for e in c.of("reply.audio") if e["reply_id"] == started["reply_id"]]
        assert {len(e["data"]) for e in chunks[:-1]} == {640}  # 480 bytes = 10 ms of PCM16
        span = chunks[-1]["_t"] - chunks[0]["_t"]
        assert span == pytest.approx(samples / 24000, abs=0.25)  # paced in real time

        sent_at = await c.stream(
            np.concatenate([speech("what is the weather in paris"), silence(1.0)])
        )
        call = await c.wait_for("tool.call")
        assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
        assert call["call_id"].startswith("chatcmpl-tool-")
        user = c.of("transcript.user")[-1]
        assert user["text"] == "what is the weather in paris"
        assert c.of("transcript.user.delta") and c.of("input.speech.started")
        stopped = c.of("input.speech.stopped")[-1]
        assert stopped["_t"] - sent_at < 4.0
        await c.send("tool.result", call_id=call["call_id"], result=json.dumps({"temp_c": 21}))
        answer = await c.wait_for("transcript.agent", count=3, timeout=20)
        assert "temp c 21" in answer["text"]
        await c.send("session.end")
        ended = await c.wait_for("session.ended")
        assert ended["audio_duration_seconds"] is None
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1000

    run(main())


def test_barge_in_interrupts_and_backchannel_does_not(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(agent.url, {"output": {"voice": "alba"}})
        await c.send("reply.create", instructions="Say: " + "this is a long answer " * 6)
        started = await c.wait_for("reply.started")
        await c.wait_for("reply.audio")
        await asyncio.sleep(1.0)
        await c.stream(np.concatenate([speech("uh huh"), silence(1.0)]))
        assert not c.of("reply.done"), "a backchannel must not interrupt"
        await c.stream(np.concatenate([speech("wait stop please stop"), silence(0.2)]))
        done = await c.wait_for("reply.done", reply_id=started["reply_id"])
        assert done["status"] == "interrupted"
        final = next(e for e in c.of("transcript.agent") if e["reply_id"] == started["reply_id"])
        assert final["interrupted"] is True
        full = ("this is a long answer " * 6).strip()
        assert 0 < len(final["text"]) < len(full) and full.startswith(final["text"])
        # the barge-in is decided once: speech.started, then the cut, with no more audio of
        # the reply between them
        speech_started = c.of("input.speech.started")[-1]
        between = c.events[c.events.index(speech_started) : c.events.index(done)]
        assert all(e["type"] != "reply.audio" for e in between), [e["type"] for e in between]
        await c.close()

    run(main())


def test_interrupt_response_false_disables_barge_in(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(
            agent.url, {"input": {"turn_detection": {"interrupt_response": False}}}
        )
        await c.send("reply.create", instructions="Say: " + "one two three four five " * 3)
        started = await c.wait_for("reply.started")
        await c.wait_for("reply.audio")
        await c.stream(np.concatenate([speech("wait stop please stop"), silence(0.3)]))
        done = await c.wait_for("reply.done", reply_id=started["reply_id"], timeout=20)
        assert done["status"] == "completed"
        await c.close()

    run(main())


def test_resume_after_a_dropped_socket(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(
            agent.url, {"system_prompt": "You are Ivy.", "output": {"voice": "ivy"}}
        )
        ready = c.of("session.ready")[0]
        c.ws.transport.abort()  # a network drop, no session.end
        await asyncio.wait_for(c.closed.wait(), 5)
        r = await RawClient.open(agent.url)
        await r.send("session.resume", session_id=ready["session_id"])
        again = await r.wait_for("session.ready")
        assert again["session_id"] == ready["session_id"]
        await r.send("reply.create")
        await r.wait_for("reply.done")
        x = await RawClient.open(agent.url)
        await x.send("session.resume", session_id="sess_unknown")
        err = await x.wait_for("session.error")
        assert err["code"] == "session_not_found"
        await asyncio.wait_for(x.closed.wait(), 5)
        assert x.ws.close_code == 1008
        await r.close()

    run(main())


def test_errors_on_the_wire(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(agent.url)
        await c.send("session.update", session={"output": {"voice": "zelda"}})
        err = await c.wait_for("session.error")
        assert (err["code"], err["param"]) == ("invalid_value", "output.voice")
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1008

        c = await RawClient.open(agent.url, {})
        await c.ws.send("not json")
        await c.send("nope")
        await c.send("input.audio", audio="%%%")
        await c.send("session.update", session={"output": {"voice": "james"}})
        await c.wait_for("session.error", count=4)
        codes = [e["code"] for e in c.of("session.error")]
        assert codes == ["invalid_format", "invalid_format", "invalid_audio", "immutable_field"]
        await c.ws.send(json.dumps({"type": "input.audio", "audio": "A" * (1 << 20)}))
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1009  # frames over 1 MB are refused
        # the server is still fine
        c = await RawClient.open(agent.url, {})
        await c.close()

    run(main())


def test_auth_and_temporary_tokens() -> None:
    import voicekit as vk

    with vk.local.serve(
        api_key="class-secret", profile="fast", behaviour={"reusable_tokens": False}
    ) as server:

        async def main() -> None:
            bad = await RawClient.open(server.url)
            err = await bad.wait_for("session.error")
            assert (err["code"], err["message"]) == ("unauthorized", "Authentication failed")
            await asyncio.wait_for(bad.closed.wait(), 5)
            assert bad.ws.close_code == 1008
            ok = await RawClient.open(
                server.url, {}, additional_headers={"Authorization": "Bearer class-secret"}
            )
            await ok.close()
            raw = await RawClient.open(
                server.url, {}, additional_headers={"Authorization": "class-secret"}
            )
            await raw.close()
            request = urllib.request.Request(
                server.token_url + "?expires_in_seconds=60",
                headers={"Authorization": "class-secret"},
            )
            body = await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(request)))
            assert body["expires_in_seconds"] == 60
            first = await RawClient.open(server.url + "?token=" + body["token"], {})
            await first.close()
            again = await RawClient.open(server.url + "?token=" + body["token"])
            err = await again.wait_for("session.error")  # single use
            assert err["code"] == "unauthorized"

        run(main())


def test_pluggable_brain() -> None:
    import voicekit as vk

    seen: list[list[dict]] = []

    def brain(history, tools):
        seen.append(list(history))
        return ToolRequest("get_weather", {"city": "Oslo"}) if len(seen) == 1 else "Sunny."

    with vk.local.serve(profile="fast", brain=brain) as server:

        async def main() -> None:
            c = await RawClient.open(server.url, {"tools": [WEATHER]})
            await c.send("reply.create", instructions="check")
            call = await c.wait_for("tool.call")
            assert call["arguments"] == {"city": "Oslo"}
            await c.send("tool.result", call_id=call["call_id"], result="sunny")
            answer = await c.wait_for("transcript.agent", count=2)
            assert answer["text"] == "Sunny."
            assert seen[1][-1] == {
                "role": "tool",
                "name": "get_weather",
                "content": "sunny",
                "is_error": False,
            }
            await c.close()

        run(main())


def test_four_concurrent_sessions_recognise_the_20_sentences(agent) -> None:
    from pathlib import Path

    from voicekit.speech.asr import word_errors

    rows = [
        line.split("|")[1]
        for line in (Path(__file__).parents[2] / "voicekit/speech/data/eval.txt")
        .read_text()
        .splitlines()
        if line and not line.startswith("#")
    ]

    async def one(sentences: list[str]) -> tuple[int, int]:
        c = await RawClient.open(agent.url, {"input": {"turn_detection": {"min_silence": 500}}})
        errors = words = 0
        for i, sentence in enumerate(sentences):
            await c.stream(np.concatenate([speech(sentence), silence(1.8)]))
            heard = (await c.wait_for("transcript.user", count=i + 1))["text"]
            e, n = word_errors(sentence, heard)
            errors, words = errors + e, words + n
        await c.close()
        return errors, words

    async def main() -> float:
        results = await asyncio.gather(*(one(rows[i::4]) for i in range(4)))
        return 1 - sum(e for e, _ in results) / sum(n for _, n in results)

    accuracy = run(main())
    print(f"word accuracy through the server, 4 concurrent sessions: {accuracy:.2f}")
    assert accuracy >= 0.70


def test_a_cold_agent_keeps_audio_sent_right_after_session_ready() -> None:
    """session.ready does not wait for the speech pipeline of a new agent's first session;
    audio that arrives before the pipeline is built is held, not lost."""
    import voicekit as vk
    from voicekit.speech.asr import word_errors

    sentence = "what is the weather in paris"
    with vk.local.serve(profile="fast") as server:  # new recognition processes: cold

        async def main() -> str:
            c = await RawClient.open(server.url, {})
            # the whole utterance at once, before the pipeline can have been built
            audio = np.concatenate([speech(sentence), silence(1.5)]).astype("<i2").tobytes()
            await c.send("input.audio", audio=base64.b64encode(audio).decode())
            heard = (await c.wait_for("transcript.user", timeout=30))["text"]
            assert c.of("input.speech.started")
            await c.close()
            return str(heard)

        heard = run(main())
    errors, _ = word_errors(sentence, heard)
    assert errors <= 2, f"heard {heard!r} for {sentence!r}: the start of the audio was lost?"
