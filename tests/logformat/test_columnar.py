"""The columnar copy of a bundle's events (``events.parquet``): written when a session
stops, made on first read, rebuilt when stale; read back line for line as ``events.jsonl``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from voicekit.errors import ConfigError
from voicekit.logformat import LogFormatWarning, LogWriter, load_log
from voicekit.logformat.columnar import COPY_NAME, read_events


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "events.jsonl").read_text().splitlines() if x.strip()]


def _writer(tmp_path: Path) -> LogWriter:
    """A bundle whose chunk lines are of every kind: regular, and ones the columns cannot
    hold whole (a field of another name, a null reply id, a ':' inside a string)."""
    w = LogWriter(tmp_path, meta={"backend": "local", "config": {}})
    w.write_event(0.0, "local", "session.start", backend="local")
    w.write_event(0.05, "recv", "session.ready", session_id="sess_c", config={"a": {"b": [1]}})
    for k in range(40):
        w.write_event(
            0.1 + k * 0.05, "send", "input.audio", audio="AAAA", offset=k * 1200, samples=1200
        )
    w.write_event(2.2, "recv", "reply.started", reply_id="r1")
    for k in range(30):
        w.write_event(2.3 + k * 0.01, "recv", "reply.audio", reply_id="r1", data="AA", samples=240)
    w.write_event(2.65, "recv", "reply.audio", reply_id="r1", samples=100, item_id="it_9")
    w.write_event(2.66, "recv", "reply.audio", reply_id=None, samples=50)
    w.write_event(2.67, "recv", "reply.audio", reply_id="r:2", samples=70)
    w.write_event(2.9, "recv", "reply.done", reply_id="r1", status="completed")
    w.set_session_id("sess_c")
    return w


def test_a_closed_bundle_has_a_copy_that_reads_back_every_line(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    assert (w.path / COPY_NAME).is_file()
    log = load_log(w.path)
    assert log.raw_events == _lines(w.path)  # exactly, irregular chunk lines included
    assert log.of_type("reply.audio")[-3:] == _lines(w.path)[-4:-1]
    audio = log.columns("reply.audio")
    assert audio["samples"].sum() == 30 * 240 + 100 + 50 + 70
    assert list(audio["reply_id"][-3:]) == ["r1", None, "r:2"]
    assert audio["t"][0] == pytest.approx(2.3) and audio["timestamp"][:1].tolist() != [0.0]
    sent = log.columns("input.audio")
    assert sent["offset"].tolist() == [k * 1200 for k in range(40)]
    replies = log.replies.set_index("reply_id")  # from the columns: the first chunk's time
    assert replies.loc["r1", "first_audio"] == pytest.approx(2.3)
    assert set(replies.index) == {"r1", "r:2"}  # a chunk without a reply id is no reply
    with pytest.raises(ConfigError, match=r"of_type\('reply.done'\)") as err:
        log.columns("reply.done")
    assert err.value.field == "kind"
    assert sorted(audio) == sorted(["t", "dir", "reply_id", "offset", "samples", "timestamp"])
    with pytest.raises(KeyError):
        audio["text"]
    codes, names = log.event_table.codes("reply.audio", "reply_id")
    assert [names[c] if c >= 0 else None for c in codes] == list(audio["reply_id"])
    whole = log.event_table.dicts()  # the whole columns made: the same values by that path
    assert list(log.columns("reply.audio")["reply_id"]) == list(audio["reply_id"])
    assert len(whole) == len(_lines(w.path))
    with pytest.raises(ConfigError, match="dir or reply_id") as err:
        log.event_table.codes("reply.audio", "samples")
    assert err.value.field == "name"


def test_the_copy_is_made_on_first_read_and_then_used(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    copy = w.path / COPY_NAME
    copy.unlink()  # an older bundle: no copy
    first = load_log(w.path).raw_events
    assert copy.is_file()
    stamp = copy.stat().st_mtime_ns
    assert load_log(w.path).raw_events == first
    assert copy.stat().st_mtime_ns == stamp  # read, not made again
    assert not [p.name for p in w.path.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_stale_copy_is_rebuilt(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    events = w.path / "events.jsonl"
    with events.open("a") as f:  # another program appended to the log after the copy
        f.write('{"t": 3.5, "dir": "local", "type": "session.stop", "status": "ended"}\n')
    log = load_log(w.path)
    assert log.raw_events[-1]["type"] == "session.stop" and log.duration == 3.5
    meta = json.loads(pq.read_schema(w.path / COPY_NAME).metadata[b"voicekit"])
    assert meta["source"]["size"] == events.stat().st_size


def test_a_corrupt_copy_is_rebuilt(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    (w.path / COPY_NAME).write_bytes(b"PAR1 not really")
    os.utime(w.path / COPY_NAME)
    assert load_log(w.path).raw_events == _lines(w.path)


def test_damage_warns_on_every_read_and_keeps_what_is_readable(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    events = w.path / "events.jsonl"
    lines = events.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]  # out of order
    lines.insert(6, "not json")
    events.write_text("\n".join(lines) + '\n{"t": 2.0, "dir": "recv", "type": "repl')
    (w.path / COPY_NAME).unlink()
    for _ in range(2):  # parsed, then from the copy: the same warnings, the same events
        with pytest.warns(LogFormatWarning) as record:
            log = load_log(w.path)
            got = log.raw_events
        said = " | ".join(str(r.message) for r in record)
        assert "events.jsonl:7: skipped an unreadable line" in said
        assert f"events.jsonl:{len(lines) + 1}: skipped a truncated last line" in said
        assert "out of time order" in said
        assert len(got) == len(lines) - 1
        assert [e["t"] for e in got] == sorted(e["t"] for e in got)
    assert (w.path / COPY_NAME).is_file()


def test_the_fast_and_the_line_by_line_reader_agree(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.close()
    fast = read_events(w.path / "events.jsonl", copy=False)
    text = (w.path / "events.jsonl").read_text()
    (w.path / "events.jsonl").write_text(text + "[1, 2]\n")  # one non-event: line by line
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        slow = read_events(w.path / "events.jsonl", copy=False)
    assert slow.dicts() == fast.dicts()
    for name in ("t", "samples", "offset"):
        assert np.array_equal(slow.columns("reply.audio")[name], fast.columns("reply.audio")[name])
