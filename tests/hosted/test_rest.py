"""vk.hosted: listing and downloading the session history, against the stand-in agent's own
history routes on a real socket (fast profile, with a key).

Where a test needs to see or disturb the traffic (bytes served, Range headers, a body cut
off, URLs that have expired), the client talks to the agent through ``Relay``: a real HTTP
server on loopback that forwards each request to the agent with its Host header, so the
artifact URLs the agent signs point back at the relay.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import voicekit as vk
from voicekit.cli import main

KEY = "sk-test-hosted-5e4d3c2b1a09"
RATE = 24000
FILES = {"session.json", "config.json", "timeline.json", "metadata.json", "recording.ogg"}


# -- a relay in front of the agent -------------------------------------------------------------
class Relay:
    """A loopback HTTP server forwarding GETs to ``agent``; it records what it served.

    Attributes
    ----------
    served : list of dict
        One entry a request: ``path`` (no query), ``range`` (the Range header or None),
        ``status`` and ``bytes`` (body bytes sent).
    cut : dict
        Artifact type -> bytes after which the next answer's body stops (the connection
        closes), once.
    expire : int
        How many of the next ``/v1/sessions/{id}`` answers get expired artifact URLs.
    ignore_range : bool
        Forward without the Range header (a server without ranges).
    """

    def __init__(self, agent: vk.local.LocalAgent) -> None:
        self.agent = agent
        self.served: list[dict[str, Any]] = []
        self.cut: dict[str, int] = {}
        self.expire = 0
        self.ignore_range = False
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                relay.forward(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.url = f"ws://{host}:{port}/v1/ws"

    def forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = urllib.parse.urlsplit(h.path).path
        headers = {"Host": h.headers["Host"]}
        for name in ("Authorization", "Range"):
            if h.headers.get(name) and not (name == "Range" and self.ignore_range):
                headers[name] = h.headers[name]
        request = urllib.request.Request(
            f"http://{self.agent.host}:{self.agent.port}{h.path}", headers=headers
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as r:
                status, answer, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, answer, body = exc.code, exc.headers, exc.read()
        kind = path.rsplit("/", 1)[-1] if path.startswith("/v1/artifacts/") else None
        if path.startswith("/v1/sessions/") and status == 200 and self.expire > 0:
            self.expire -= 1
            body = self._expired(json.loads(body), h.headers["Host"])
        sent = body[: self.cut.pop(kind)] if kind in self.cut else body
        self.served.append(  # before the answer: the client may go on as soon as it has it
            {"path": path, "range": headers.get("Range"), "status": status, "bytes": len(sent)}
        )
        h.send_response(status)
        for name in ("Content-Type", "Content-Range", "Accept-Ranges"):
            if answer.get(name):
                h.send_header(name, answer[name])
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(sent)
        h.wfile.flush()
        if len(sent) < len(body):
            h.close_connection = True

    def _expired(self, record: dict[str, Any], host: str) -> bytes:
        """The record with artifact URLs that expired a minute ago (signed by the agent)."""
        past = int(time.time()) - 60
        for artifact in record["artifacts"]:
            artifact["url"] = self.agent.history.sign_url(
                f"http://{host}", record["id"], artifact["type"], past
            )
        return json.dumps(record).encode()

    def artifacts(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The artifact requests served (of one type)."""
        return [
            s
            for s in self.served
            if s["path"].startswith("/v1/artifacts/")
            and (kind is None or s["path"].endswith("/" + kind))
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent() -> Iterator[vk.local.LocalAgent]:
    """A stand-in agent with a key (its history routes then need it), fast profile."""
    with vk.local.serve(profile="fast", api_key=KEY) as served:
        yield served


@pytest.fixture
def relay(agent: vk.local.LocalAgent) -> Iterator[Relay]:
    r = Relay(agent)
    yield r
    r.close()


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)


def wait_completed(agent: vk.local.LocalAgent, ids: list[str], timeout: float = 10.0) -> None:
    """Poll the listing until every session in ``ids`` is completed (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        df = vk.hosted.list_sessions(url=agent.url, api_key=KEY)
        done = set(df[df.status == "completed"].id)
        if set(ids) <= done:
            return
        assert time.monotonic() < deadline, f"not completed within {timeout} s: {df}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sessions(agent: vk.local.LocalAgent, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """Three sessions, oldest first: a scripted conversation, then two silent ones."""
    logs = []
    s = vk.Session(
        url=agent.url,
        api_key=KEY,
        audio_in=vk.ScriptedUser([vk.Say("hello there")]),
        audio_out="null",
        log_dir=tmp_path_factory.mktemp("logs"),
        greeting="Hi",
    )
    s.start()
    assert s.wait(60)
    logs.append(s.stop())
    for _ in range(2):
        quiet = vk.Session(
            url=agent.url,
            api_key=KEY,
            audio_in="null",
            audio_out="null",
            log_dir=tmp_path_factory.mktemp("logs"),
        )
        quiet.start()
        logs.append(quiet.stop())
    wait_completed(agent, [log.session_id for log in logs])
    return logs


# -- listing -------------------------------------------------------------------------------
def test_list_sessions_has_the_columns_and_values_of_the_sessions(agent, sessions) -> None:
    df = vk.hosted.list_sessions(url=agent.url, api_key=KEY)
    assert tuple(df.columns) == vk.hosted.COLUMNS
    assert list(df.id) == [log.session_id for log in reversed(sessions)]  # newest first
    assert (df.status == "completed").all() and (df.close_reason == "client_end").all()
    assert df.agent_id.isna().all()
    assert str(df.started_at.dtype) == str(df.ended_at.dtype) == "datetime64[ns, UTC]"
    assert df.duration.dtype == float
    for log in sessions:
        row = df.set_index("id").loc[log.session_id]
        own = log.of_type("session.ended")[0]["session_duration_seconds"]
        assert row.duration == pytest.approx(own, abs=1e-6)
        span = (row.ended_at - row.started_at).total_seconds()
        # the record's ended_at is the close, a moment after session.ended gave the duration
        assert span == pytest.approx(row.duration, abs=0.25)
        started = pd.Timestamp(log.meta["started_at"])
        assert abs((row.started_at - started).total_seconds()) < 2  # same moment, two clocks
    talk = df.set_index("id").loc[sessions[0].session_id]
    ready, stop = sessions[0].of_type("session.ready")[0], sessions[0].of_type("session.stop")
    assert talk.duration == pytest.approx(stop[0]["t"] - ready["t"], abs=0.5)


def test_paging_follows_next_cursor_up_to_the_limit(agent, sessions, relay) -> None:
    everything = vk.hosted.list_sessions(url=agent.url, api_key=KEY)
    paged = vk.hosted.list_sessions(url=relay.url, api_key=KEY, page_size=1)
    pd.testing.assert_frame_equal(paged, everything)
    assert [s["path"] for s in relay.served] == ["/v1/sessions"] * 3  # a page a session
    relay.served.clear()
    two = vk.hosted.list_sessions(2, url=relay.url, api_key=KEY, page_size=1)
    assert list(two.id) == list(everything.id[:2])
    assert len(relay.served) == 2  # no page asked for beyond the limit
    assert len(vk.hosted.list_sessions(1, url=agent.url, api_key=KEY)) == 1


def test_filters(agent, sessions) -> None:
    df = vk.hosted.list_sessions(url=agent.url, api_key=KEY)
    oldest = df.started_at.min()
    since = vk.hosted.list_sessions(url=agent.url, api_key=KEY, since=df.started_at[1])
    assert list(since.id) == list(df.id[:2])
    assert len(vk.hosted.list_sessions(url=agent.url, api_key=KEY, since=oldest)) == 3
    as_text = oldest.strftime("%Y-%m-%dT%H:%M:%S.%f")  # no zone: UTC
    assert len(vk.hosted.list_sessions(url=agent.url, api_key=KEY, since=as_text)) >= 3
    assert len(vk.hosted.list_sessions(url=agent.url, api_key=KEY, status="completed")) == 3
    none = vk.hosted.list_sessions(url=agent.url, api_key=KEY, agent_id="agent_" + "0" * 32)
    assert none.empty and tuple(none.columns) == vk.hosted.COLUMNS
    with pytest.raises(vk.ConfigError) as err:
        vk.hosted.list_sessions(url=agent.url, api_key=KEY, since="yesterday-ish")
    assert err.value.field == "since"
    with pytest.raises(vk.ConfigError) as err:
        vk.hosted.list_sessions(0, url=agent.url, api_key=KEY)
    assert err.value.field == "limit"


def test_an_agent_without_sessions_lists_an_empty_frame(voicekit_agent_factory) -> None:
    empty = voicekit_agent_factory(profile="fast")
    df = vk.hosted.list_sessions(url=empty.url)
    assert df.empty and tuple(df.columns) == vk.hosted.COLUMNS
    assert str(df.started_at.dtype) == "datetime64[ns, UTC]" and df.duration.dtype == float


# -- downloading ---------------------------------------------------------------------------
def test_download_writes_the_session_files(agent, sessions, relay, tmp_path, caplog) -> None:
    caplog.set_level("DEBUG", logger="voicekit")
    log = sessions[0]
    path = vk.hosted.download(log.session_id, tmp_path, url=relay.url, api_key=KEY)
    assert path == tmp_path / log.session_id
    assert {p.name for p in path.iterdir()} == FILES  # no .part left
    info = sf.info(path / "recording.ogg")
    assert (info.channels, info.samplerate) == (2, RATE)
    audio, _ = sf.read(path / "recording.ogg", dtype="int16", always_2d=True)
    duration = log.of_type("session.ended")[0]["session_duration_seconds"]
    assert len(audio) / RATE == pytest.approx(duration, abs=0.3)
    said = log.of_type("user.utterance")[0]
    ready = log.of_type("session.ready")[0]["t"]
    a, b = int((said["start"] - ready) * RATE), int((said["end"] - ready) * RATE)
    assert np.abs(audio[a:b, 0].astype(np.int32)).mean() > 300  # the user, left
    assert np.abs(audio[:, 1].astype(np.int32)).max() > 3000  # the agent's greeting, right
    served = relay.artifacts("audio")
    assert len(served) == 1 and served[0]["bytes"] == (path / "recording.ogg").stat().st_size

    record = json.loads((path / "session.json").read_text())
    assert record["id"] == log.session_id and record["status"] == "completed"
    assert record["artifacts"] == [
        {"type": "audio", "content_type": "audio/ogg", "file": "recording.ogg"},
        {"type": "timeline", "content_type": "application/json", "file": "timeline.json"},
        {"type": "metadata", "content_type": "application/json", "file": "metadata.json"},
    ]
    config = json.loads((path / "config.json").read_text())
    assert config == record["config"] and config["greeting"] == "Hi"
    timeline = json.loads((path / "timeline.json").read_text())
    assert timeline["session_id"] == log.session_id
    assert [t["trigger"] for t in timeline["turns"]] == ["greeting", "user_speech"]
    metadata = json.loads((path / "metadata.json").read_text())
    assert (metadata["channels"], metadata["sample_rate"]) == (2, RATE)
    for name in FILES - {"recording.ogg"}:
        text = (path / name).read_text()
        for secret in (KEY, "signature", "expires=", "/v1/artifacts/"):
            assert secret not in text, f"{name} holds {secret!r}"
    assert KEY not in caplog.text and "signature" not in caplog.text

    relay.served.clear()  # a rerun: complete, nothing is fetched again
    assert vk.hosted.download(log.session_id, tmp_path, url=relay.url, api_key=KEY) == path
    assert relay.served == []


def test_a_cut_off_body_is_resumed_with_a_range_request(agent, sessions, relay, tmp_path) -> None:
    sid = sessions[0].session_id
    whole = vk.hosted.download(sid, tmp_path / "direct", url=agent.url, api_key=KEY)
    expected = (whole / "recording.ogg").read_bytes()
    relay.cut["audio"] = 10_000
    path = vk.hosted.download(sid, tmp_path / "relayed", url=relay.url, api_key=KEY)
    served = relay.artifacts("audio")
    assert [s["range"] for s in served] == [None, "bytes=10000-"]
    assert [s["status"] for s in served] == [200, 206]
    assert [s["bytes"] for s in served] == [10_000, len(expected) - 10_000]
    assert (path / "recording.ogg").read_bytes() == expected


def test_a_rerun_continues_a_part_file(agent, sessions, relay, tmp_path) -> None:
    sid = sessions[0].session_id
    path = vk.hosted.download(sid, tmp_path, url=agent.url, api_key=KEY)
    expected = (path / "recording.ogg").read_bytes()
    half = len(expected) // 2
    (path / "recording.ogg.part").write_bytes(expected[:half])  # an interrupted download
    (path / "recording.ogg").unlink()
    vk.hosted.download(sid, tmp_path, url=relay.url, api_key=KEY)
    assert relay.artifacts() == [
        {"path": f"/v1/artifacts/{sid}/audio", "range": f"bytes={half}-", "status": 206,
         "bytes": len(expected) - half}
    ]  # fmt: skip
    assert (path / "recording.ogg").read_bytes() == expected
    assert {p.name for p in path.iterdir()} == FILES


def test_a_server_without_ranges_sends_the_whole_file_again(
    agent, sessions, relay, tmp_path
) -> None:
    sid = sessions[0].session_id
    path = vk.hosted.download(sid, tmp_path, url=agent.url, api_key=KEY)
    expected = (path / "recording.ogg").read_bytes()
    (path / "recording.ogg.part").write_bytes(b"\0" * 100)  # bytes that are not the file's
    (path / "recording.ogg").unlink()
    relay.ignore_range = True
    vk.hosted.download(sid, tmp_path, url=relay.url, api_key=KEY)
    assert [(s["status"], s["bytes"]) for s in relay.artifacts()] == [(200, len(expected))]
    assert (path / "recording.ogg").read_bytes() == expected


def test_overwrite_downloads_again(agent, sessions, relay, tmp_path) -> None:
    sid = sessions[1].session_id
    vk.hosted.download(sid, tmp_path, url=relay.url, api_key=KEY)
    vk.hosted.download(sid, tmp_path, url=relay.url, api_key=KEY, overwrite=True)
    assert len(relay.artifacts()) == 6


def test_expired_urls_are_fetched_again_once(agent, sessions, relay, tmp_path) -> None:
    sid = sessions[1].session_id
    relay.expire = 1
    path = vk.hosted.download(sid, tmp_path, url=relay.url, api_key=KEY)
    assert {p.name for p in path.iterdir()} == FILES
    details = [s for s in relay.served if s["path"] == f"/v1/sessions/{sid}"]
    assert len(details) == 2
    assert [s["status"] for s in relay.artifacts()] == [403, 200, 200, 200]

    relay.expire = 2  # the fresh URLs are expired too: an error, no second retry
    relay.served.clear()
    with pytest.raises(vk.ServerError) as err:
        vk.hosted.download(sid, tmp_path / "again", url=relay.url, api_key=KEY)
    assert err.value.code == "access_denied" and "expired" in str(err.value)
    assert "signature" not in str(err.value) and KEY not in str(err.value)
    assert len([s for s in relay.served if s["path"] == f"/v1/sessions/{sid}"]) == 2
    assert not (tmp_path / "again" / sid / "session.json").exists()


def test_download_all_skips_what_is_downloaded(agent, sessions, relay, tmp_path) -> None:
    paths = vk.hosted.download_all(tmp_path, url=relay.url, api_key=KEY, progress=False)
    assert [p.name for p in paths] == [log.session_id for log in reversed(sessions)]
    assert len(relay.artifacts()) == 9
    relay.served.clear()
    again = vk.hosted.download_all(tmp_path, url=relay.url, api_key=KEY, progress=False)
    assert again == paths and relay.artifacts() == []
    assert len(vk.hosted.download_all(tmp_path, 1, url=agent.url, api_key=KEY)) == 1


# -- errors ----------------------------------------------------------------------------------
def test_a_wrong_or_missing_key_is_a_clear_error_without_the_key(agent, sessions) -> None:
    wrong = "sk-wrong-key-0123456789abcdef"
    for call in (
        lambda: vk.hosted.list_sessions(url=agent.url, api_key=wrong),
        lambda: vk.hosted.download(sessions[0].session_id, url=agent.url, api_key=wrong),
    ):
        with pytest.raises(vk.ServerError) as err:
            call()
        assert err.value.code == "unauthorized"
        assert "api_key" in str(err.value) and "ASSEMBLYAI_API_KEY" in str(err.value)
        assert wrong not in str(err.value) and wrong not in repr(err.value)
    with pytest.raises(vk.ServerError) as err:
        vk.hosted.list_sessions(url=agent.url)  # no key sent to an agent that wants one
    assert err.value.code == "unauthorized" and "authorization" in str(err.value)


def test_an_unknown_session_id_is_named(agent, tmp_path) -> None:
    with pytest.raises(vk.ServerError) as err:
        vk.hosted.download("sess_doesnotexist", tmp_path, url=agent.url, api_key=KEY)
    assert err.value.code == "session_not_found" and err.value.param == "session_id"
    assert "'sess_doesnotexist'" in str(err.value) and "list_sessions" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    for bad in ("", "../etc", "a/b", None):
        with pytest.raises(vk.ConfigError) as config_err:
            vk.hosted.download(bad, tmp_path, url=agent.url, api_key=KEY)  # type: ignore[arg-type]
        assert config_err.value.field == "session_id"
    with pytest.raises(vk.ConfigError) as config_err:
        vk.hosted.list_sessions(url="http://127.0.0.1:1/v1/ws")
    assert config_err.value.field == "url"


def test_an_active_session_says_to_retry_and_wait_polls(voicekit_agent_factory, tmp_path) -> None:
    agent = voicekit_agent_factory(profile="fast", api_key=KEY)  # the module's keeps 3 sessions
    s = vk.Session(url=agent.url, api_key=KEY, audio_in="null", audio_out="null",
                   log_dir=tmp_path / "logs")  # fmt: skip
    s.start()
    try:
        with pytest.raises(vk.ServerError) as err:
            vk.hosted.download(s.session_id, tmp_path, url=agent.url, api_key=KEY)
        assert err.value.code == "session_active"
        assert "still active" in str(err.value) and "retry" in str(err.value)
        assert "wait=" in str(err.value)
        df = vk.hosted.list_sessions(url=agent.url, api_key=KEY, status="active")
        assert s.session_id in set(df.id) and df.ended_at.isna().all()
    finally:
        log = s.stop()
    path = vk.hosted.download(log.session_id, tmp_path, url=agent.url, api_key=KEY, wait=10)
    assert {p.name for p in path.iterdir()} == FILES


def test_artifacts_not_ready_yet_say_so(voicekit_agent_factory, tmp_path) -> None:
    slow = voicekit_agent_factory(profile="hosted")  # artifacts ~6.7 s after the end
    s = vk.Session(url=slow.url, audio_in="null", audio_out="null", log_dir=tmp_path / "logs")
    s.start()
    log = s.stop()
    with pytest.raises(vk.ServerError) as err:
        vk.hosted.download(log.session_id, tmp_path, url=slow.url, wait=0.5)
    assert err.value.code in ("artifacts_not_ready", "session_active")
    assert "retry in a few seconds" in str(err.value) and "waited 0.5 s" in str(err.value)
    # download_all polls such a session for up to wait= s instead of skipping it
    paths = vk.hosted.download_all(tmp_path / "all", url=slow.url, wait=30, progress=False)
    assert [p.name for p in paths] == [log.session_id]
    assert {p.name for p in paths[0].iterdir()} == FILES


# -- command line --------------------------------------------------------------------------
def test_cli_lists_and_downloads(agent, sessions, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    assert main(["hosted", "list", "--url", agent.url, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "close_reason" in out and sessions[-1].session_id in out
    assert sessions[0].session_id not in out  # the limit
    sid = sessions[0].session_id
    assert main(["hosted", "download", sid, "--dir", str(tmp_path), "--url", agent.url]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / sid)
    assert {p.name for p in (tmp_path / sid).iterdir()} == FILES
    assert main(["hosted", "download", "sess_nope", "--url", agent.url]) == 1
    err = capsys.readouterr().err
    assert "'sess_nope'" in err and KEY not in err
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "sk-wrong-cli-key-123456")
    assert main(["hosted", "list", "--url", agent.url]) == 1
    assert "sk-wrong-cli-key-123456" not in capsys.readouterr().err


def test_cli_report_of_a_downloaded_session(agent, sessions, tmp_path, capsys) -> None:
    sid = sessions[0].session_id
    path = vk.hosted.download(sid, tmp_path, url=agent.url, api_key=KEY)
    out = tmp_path / "report.html"
    code = main(["hosted", "report", str(path), "-o", str(out)])
    with contextlib.suppress(ImportError):
        import voicekit.logformat.hosted  # noqa: F401  (the reader; until then: a clear error)

        assert code == 0 and out.is_file()
        return
    assert code == 1 and not out.exists()
    assert "cannot read hosted sessions yet" in capsys.readouterr().err
