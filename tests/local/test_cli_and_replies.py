"""`python -m voicekit serve | demo | talk`, reply.cancel, and the tool timeout apology."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rawclient import RawClient, run

import voicekit as vk

pytestmark = pytest.mark.slow

SLOW_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "timeout_seconds": 1,
    "parameters": {"type": "object", "properties": {}},
}


def test_serve_command_prints_the_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicekit", "serve", "--port", "0", "--profile", "fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("voicekit stand-in agent listening on ws://127.0.0.1:")
        url = line.split()[-1]

        async def talk() -> None:
            c = await RawClient.open(url, {"greeting": "Hi."})
            await c.wait_for("reply.done")
            await c.close()

        run(talk())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    help_text = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--help"], capture_output=True, text=True
    ).stdout
    assert "examples:" in help_text and "--api-key" in help_text
    bad = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--port", "-5"], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stderr == "voicekit: error: port (-5) must be 0-65535; 0 picks a free port\n"


def test_demo_command_runs_a_conversation_and_writes_a_report(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "demo", "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "agent: Hi! Ask me anything." in out and "  you: " in out
    assert "[tool] get_weather(" in out and "[interrupted]" in out
    report = next(line for line in out.splitlines() if line.startswith("report: "))[8:]
    assert Path(report).exists() and "<img" in Path(report).read_text()
    summary = dict(
        line.strip().split(": ", 1) for line in out.split("summary:")[1].strip().splitlines()
    )
    log = vk.load_log(Path(report).parent)
    assert int(summary["turns"]) == len(log.turns) >= 4
    assert int(summary["barge_ins"]) == len(log.barge_ins) >= 1


def test_talk_command_help_and_bad_input() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "voicekit", "talk", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--voice", "--vad-threshold", "--min-silence", "--max-silence"):
        assert flag in help_text
    assert "--no-interrupt" in help_text and "--keyterm" in help_text and "examples:" in help_text
    bad = subprocess.run(
        [sys.executable, "-m", "voicekit", "talk", "--vad-threshold", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("voicekit: error: vad_threshold (2.0) must be a number")
    assert bad.stderr.count("\n") == 1  # one line


def test_reply_cancel_and_tool_timeout(agent) -> None:
    async def main() -> None:
        c = await RawClient.open(agent.url, {"tools": [SLOW_TOOL]})
        await c.send("reply.create", instructions="Say: " + "a long sentence " * 8)
        started = await c.wait_for("reply.started")
        await c.wait_for("reply.audio")
        await c.send("reply.cancel", reply_id=started["reply_id"])
        done = await c.wait_for("reply.done")
        assert done["status"] == "cancelled"
        await c.send("reply.create", instructions="weather please")
        call = await c.wait_for("tool.call")
        assert call["name"] == "get_weather"
        apology = await c.wait_for("transcript.agent", count=3, timeout=15)
        assert "taking too long" in apology["text"]
        await c.close()

    run(main())
    assert vk.local.AgentOptions().cancel_status == "cancelled"
