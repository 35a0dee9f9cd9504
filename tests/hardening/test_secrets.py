"""Planted credentials never leave the process (issue 10): logs, reprs, errors, widgets, output.

Builds on the narrower tests already there (not repeated here):
``tests/runtime/test_session.py::test_unauthorized_is_an_auth_error_and_keys_stay_secret``
(an ``api_key=`` argument refused by the agent), ``tests/widgets/test_panel.py::
test_api_key_is_used_but_never_kept_in_widget_state`` (a key typed into the panel),
``tests/logformat/test_bundle.py::test_secrets_never_reach_the_bundle`` (the writer's scrub) and
``tests/protocol/test_events.py::test_audio_helpers_and_secret_free_repr``.

Here the credentials come the other ways: the key from ``ASSEMBLYAI_API_KEY``, a temporary
token minted by the agent and passed as ``?token=`` in the URL, and the resume token the agent
issues (used as the credential of a reconnect after a dropped socket). The stand-in agent
checks them as the hosted service does (§2: Bearer header or ``?token=``; a bad credential
gets ``session.error unauthorized`` and close 1008, or HTTP 401 in the upgrade). Sessions
both run and fail; then every byte of the log directory, the reprs, the errors, the panel's
widget state, everything printed or logged (at DEBUG, websockets' handshake logs included)
and a notebook's outputs are searched for the planted strings.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import voicekit as vk
from voicekit.testing import drop_connection, wait_for_event

pytestmark = pytest.mark.slow

KEY = "sk-PLANTED-KEY-1234567890abcdef"
WRONG_KEY = "sk-PLANTED-WRONG-KEY-0987654321"
BAD_TOKEN = "PLANTED-TOKEN-xyz"


def _mint(agent: vk.local.LocalAgent) -> str:
    """A temporary token from the agent's token endpoint (§2.2), paid for with the key."""
    request = urllib.request.Request(
        agent.token_url + "?expires_in_seconds=60", headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token = json.loads(response.read())["token"]
    assert isinstance(token, str) and len(token) > 20
    return token


def _error_texts(exc: BaseException | None) -> str:
    """str and repr of an error and of everything in its cause/context chain."""
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc), repr(exc.args)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _bundle_bytes(log_dir: Path) -> dict[str, bytes]:
    files = {str(p): p.read_bytes() for p in log_dir.rglob("*") if p.is_file()}
    assert any(name.endswith("events.jsonl") for name in files), files.keys()
    return files


def _widget_state(widget: Any) -> str:
    """Every trait of every widget in the tree (as in tests/widgets/test_panel.py)."""
    states: list[dict[str, Any]] = []

    def walk(w: Any) -> None:
        states.append(w.get_state())
        for child in getattr(w, "children", ()):
            walk(child)

    walk(widget)
    return json.dumps(states, default=str)


def _assert_nowhere(secrets: list[str], places: dict[str, str | bytes]) -> None:
    for secret in secrets:
        for where, text in places.items():
            needle: str | bytes = secret.encode() if isinstance(text, bytes) else secret
            assert needle not in text, f"{secret[:12]}… found in {where}"  # type: ignore[operator]


def test_env_key_url_token_and_resume_token_stay_secret(
    tmp_path, monkeypatch, caplog, capsys
) -> None:
    """Sessions that run, resume and fail leave no key or token in logs, reprs or errors."""
    caplog.set_level(logging.DEBUG)  # a notebook user debugging a connection does this
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    with vk.local.serve(
        api_key=KEY, profile="fast", behaviour={"resume_fails": False, "reusable_tokens": False}
    ) as agent:
        token = _mint(agent)
        secrets = [KEY, token, WRONG_KEY, BAD_TOKEN]
        texts: dict[str, str | bytes] = {}

        # 1. the env key (url= given: the key goes as Bearer to that agent), a drop and resume
        s = vk.Session(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        texts["repr before start"] = repr(s) + str(s)
        s.start()
        held = agent.state.sessions[s.session_id]
        assert held.resume_token
        secrets.append(held.resume_token)
        texts["repr running"] = repr(s) + str(s) + s.url
        s.say("Say: all is well.")
        assert drop_connection(agent, s.session_id) == 1
        wait_for_event(s, "input.gap", lambda e: e.get("reason") == "resumed", timeout=15)
        log = s.stop()
        assert log.of_type("session.resume", direction="send")
        texts["repr stopped"] = repr(s) + str(s) + repr(log) + json.dumps(log.meta)

        # 2. a temporary token in the URL (no key in the environment)
        monkeypatch.delenv("ASSEMBLYAI_API_KEY")
        with_token = f"{agent.url}?token={token}"
        s2 = vk.Session(url=with_token, audio_in="null", audio_out="null", log_dir=tmp_path)
        texts["repr token"] = repr(s2) + s2.url
        s2.start()
        assert s2.status == "ready"  # the agent accepted the token
        log2 = s2.stop()
        texts["log meta (token)"] = json.dumps(log2.meta)

        # 3. refused: a wrong key (session.error unauthorized + 1008), a spent or bad token
        failures = []
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", WRONG_KEY)
        failures.append(
            vk.Session(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        )
        monkeypatch.delenv("ASSEMBLYAI_API_KEY")
        for url in (with_token, f"{agent.url}?token={BAD_TOKEN}"):  # tokens are single-use
            failures.append(
                vk.Session(url=url, audio_in="null", audio_out="null", log_dir=tmp_path)
            )
        for i, failing in enumerate(failures):
            with pytest.raises(vk.AuthError) as info:
                failing.start()
            texts[f"error {i}"] = _error_texts(info.value) + _error_texts(failing.last_error)
            texts[f"repr failed {i}"] = repr(failing) + str(failing) + failing.url

    # 4. refused in the HTTP upgrade (401), and an agent that is not there at all
    with vk.local.serve(api_key=KEY, profile="fast", reject_auth_at_http=True) as strict:
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", WRONG_KEY)
        s3 = vk.Session(url=strict.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        with pytest.raises(vk.AuthError) as info:
            s3.start()
        texts["error 401"] = _error_texts(info.value) + repr(s3)
    s4 = vk.Session(
        url=f"ws://127.0.0.1:9/v1/ws?token={BAD_TOKEN}",
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    with pytest.raises(vk.ConnectionError) as refused:
        s4.start()
    texts["error refused"] = _error_texts(refused.value) + repr(s4) + s4.url

    for name, data in _bundle_bytes(tmp_path).items():
        texts[name] = data
    out = capsys.readouterr()
    texts["stdout"], texts["stderr"] = out.out, out.err
    # every record: the session's and the stand-in agent's (it runs in this process, as the
    # embedded agent of a notebook does)
    records = caplog.records
    texts["logging"] = "\n".join(r.getMessage() + repr(r.args) + str(r.exc_info) for r in records)
    names = {r.name for r in records}
    assert {"websockets.client", "websockets.server"} <= names  # DEBUG handshakes captured
    _assert_nowhere(secrets, texts)


def test_panel_keeps_url_tokens_and_env_keys_out_of_widget_state(tmp_path, monkeypatch) -> None:
    """A ``?token=`` URL (given or typed) and the env key: used, never in any widget's state.

    The typed-key case is tests/widgets/test_panel.py::
    test_api_key_is_used_but_never_kept_in_widget_state.
    """
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    with vk.local.serve(api_key=KEY, profile="fast") as agent:
        token = _mint(agent)
        panel = vk.AgentPanel(
            url=f"{agent.url}?token={token}", audio_in="null", audio_out="null", log_dir=tmp_path
        )
        assert panel.url.value == agent.url
        session = panel.start()
        assert session.status == "ready"  # the agent accepted the token kept by the panel
        state_running = _widget_state(panel.widget)
        log = panel.stop()
        # a token typed (pasted) into the URL field, refused by the agent: an error shown
        panel.url.value = f"{agent.url}?token={BAD_TOKEN}"
        assert panel.url.value == agent.url
        with pytest.raises(vk.AuthError):
            panel.start()
        panel.refresh()
        assert "error" in panel.status.value
        texts: dict[str, str | bytes] = {
            "state running": state_running,
            "state failed": _widget_state(panel.widget),
            "panel": repr(panel) + repr(panel.session) + repr(log),
            "error": _error_texts(panel.last_error),
        }
        texts.update(_bundle_bytes(tmp_path))
        panel.close()
    _assert_nowhere([KEY, token, BAD_TOKEN], texts)


def test_notebook_outputs_hold_no_key(tmp_path) -> None:
    """A notebook that makes a session with the key in its environment shows no key."""
    import os

    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import os, voicekit as vk\n"
        f"os.environ['ASSEMBLYAI_API_KEY'] = {KEY!r}\n"
        "agent = vk.local.serve(api_key=os.environ['ASSEMBLYAI_API_KEY'], profile='fast')",
        "s = vk.Session(url=agent.url, audio_in='null', audio_out='null', log_dir='logs')\n"
        "s.start(); print(s, s.url); s",
        "log = s.stop(); print(log, log.meta); log.events.tail()",
        "bad = vk.Session(url=agent.url, api_key='sk-PLANTED-WRONG-KEY-0987654321',\n"
        "                 audio_in='null', audio_out='null', log_dir='logs')\n"
        "try:\n    bad.start()\nexcept vk.AuthError as exc:\n    print(repr(exc))\n"
        "bad",
        "agent.stop()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env_before = os.environ.get("ASSEMBLYAI_API_KEY")
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert os.environ.get("ASSEMBLYAI_API_KEY") == env_before
    outputs = json.dumps([c.outputs for c in nb.cells])
    assert "voicekit.Session" in outputs and "AuthError" in outputs, outputs[:2000]
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"], outputs
    texts: dict[str, str | bytes] = {"notebook outputs": outputs}
    texts.update(_bundle_bytes(tmp_path / "logs"))
    _assert_nowhere([KEY, WRONG_KEY], texts)
