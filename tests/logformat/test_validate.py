"""vk.validate_log and ``python -m voicekit validate``: a real bundle is clean, each kind of
damage is found at its line, the documented example is a bundle, the schemas agree with the
protocol's events and with docs/log-format.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import voicekit as vk
from voicekit.logformat.validate import KEYWORDS, Problem, load_schema, required_fields
from voicekit.protocol.events import CLIENT_EVENTS, SERVER_EVENTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "log-format.md"
EXAMPLE_LOGS = sorted((ROOT / "notebooks" / "example-logs").iterdir())


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


@pytest.fixture(scope="module")
def real_bundle(agent, tmp_path_factory) -> Path:
    """A bundle written by a real session against the stand-in agent (a tool turn, too)."""
    user = vk.ScriptedUser(
        [vk.Say("hello can you hear me"), vk.Say("what is the weather in paris")],
        gap=(0.3, 0.3),
    )
    s = vk.Session(
        url=agent.url,
        greeting="Hi.",
        tools=[get_weather],
        audio_in=user,
        audio_out="null",
        log_dir=tmp_path_factory.mktemp("real"),
    )
    with s:
        assert s.wait(60) and user.error is None
    log = s.stop()
    assert log is not None
    return Path(log.path)


def copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(bundle, out)
    return out


def lines_of(bundle: Path) -> list[dict]:
    return [json.loads(x) for x in (bundle / "events.jsonl").read_text().splitlines()]


def write_lines(bundle: Path, lines: list[dict]) -> None:
    (bundle / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def first(lines: list[dict], kind: str) -> int:
    """0-based index of the first line of ``kind``."""
    return next(i for i, x in enumerate(lines) if x["type"] == kind)


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# -- clean bundles ------------------------------------------------------------------------
def test_a_real_session_bundle_validates_clean(real_bundle) -> None:
    assert vk.validate_log(real_bundle) == []
    assert vk.validate_log(real_bundle / "events.jsonl") == []  # its events.jsonl, too
    kinds = {x["type"] for x in lines_of(real_bundle)}
    assert {"input.audio", "reply.audio", "playback.stop", "user.utterance", "tool.exec"} <= kinds


@pytest.mark.parametrize("bundle", EXAMPLE_LOGS, ids=lambda p: p.name[-8:])
def test_bundles_of_an_earlier_version_validate_clean(bundle) -> None:
    """The example logs predate playback.stop's ``end``: still clean."""
    assert not any("end" in x for x in lines_of(bundle) if x["type"] == "playback.stop")
    assert vk.validate_log(bundle) == []


def test_every_line_of_real_bundles_passes_jsonschema_too(real_bundle) -> None:
    """The shipped schema, run by a general validator, accepts what the compiled checks do."""
    events = jsonschema.Draft202012Validator(load_schema("events"))
    meta = jsonschema.Draft202012Validator(load_schema("meta"))
    for bundle in (real_bundle, *EXAMPLE_LOGS):
        assert list(meta.iter_errors(json.loads((bundle / "meta.json").read_text()))) == []
        for k, line in enumerate(lines_of(bundle), 1):
            assert [e.message for e in events.iter_errors(line)] == [], (bundle.name, k)


# -- each kind of damage, at its line -----------------------------------------------------
def test_a_reply_audio_without_reply_id_is_an_error_at_its_line(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    k = first(lines, "reply.audio")
    del lines[k]["reply_id"]
    write_lines(b, lines)
    p = only(vk.validate_log(b))
    assert (p.file, p.line, p.field, p.severity) == ("events.jsonl", k + 1, "reply_id", "error")
    assert str(p).startswith(f"events.jsonl:{k + 1}: field 'reply_id': is required")


def test_wrong_types_and_bounds_name_the_field(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    u = first(lines, "user.utterance")
    lines[u]["start"] = str(lines[u]["start"])  # "2.04" instead of 2.04
    a = first(lines, "input.audio")
    lines[a]["samples"] = -5
    s = first(lines, "playback.stop")
    lines[s]["played"] = True  # a boolean is no integer
    write_lines(b, lines)
    got = {(p.line, p.field, p.severity) for p in vk.validate_log(b)}
    assert got == {
        (u + 1, "start", "error"),
        (a + 1, "samples", "error"),
        (s + 1, "played", "error"),
    }
    text = {p.field: str(p) for p in vk.validate_log(b)}
    assert "must be a number, got" in text["start"] and "(a string)" in text["start"]
    assert "must be at least 0, got -5" in text["samples"]
    assert "must be an integer, got true (a boolean)" in text["played"]


def test_an_utterance_ending_before_it_starts(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    u = first(lines, "user.utterance")
    lines[u]["start"], lines[u]["end"] = lines[u]["end"], lines[u]["start"]
    write_lines(b, lines)
    p = only(vk.validate_log(b))
    assert (p.line, p.field, p.severity) == (u + 1, "end", "error") and "swap" in p.message


def test_time_going_backwards_is_a_warning_at_the_line(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    k = len(lines) // 2
    lines[k]["t"] = lines[k - 1]["t"] - 1.0
    write_lines(b, lines)
    p = only(vk.validate_log(b))
    assert (p.line, p.field, p.severity) == (k + 1, "t", "warning")
    assert f"line {k}'s" in p.message


def test_truncated_last_line_is_a_warning_a_broken_middle_line_an_error(
    real_bundle, tmp_path
) -> None:
    b = copy(real_bundle, tmp_path)
    text = (b / "events.jsonl").read_text()
    n = text.count("\n")
    (b / "events.jsonl").write_text(text + '{"t": 99.0, "dir": "recv", "type": "reply.do')
    p = only(vk.validate_log(b))
    assert (p.line, p.severity) == (n + 1, "warning") and "cut off" in p.message
    rows = text.splitlines(keepends=True)
    rows[3] = "not json\n"
    rows.insert(5, "[1, 2]\n")
    (b / "events.jsonl").write_text("".join(rows))
    got = [(p.line, p.severity) for p in vk.validate_log(b)]
    assert got == [(4, "error"), (6, "error")]


def test_unknown_types_and_fields_are_fine(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    lines.insert(2, {"t": lines[1]["t"], "dir": "recv", "type": "vendor.thing", "x": [1]})
    lines[first(lines, "reply.started")]["vendor_field"] = {"a": 1}
    write_lines(b, lines)
    assert vk.validate_log(b) == []


def test_a_wrong_direction_is_an_error(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    k = first(lines, "reply.started")
    lines[k]["dir"] = "send"
    write_lines(b, lines)
    p = only(vk.validate_log(b))
    assert (p.line, p.field, p.severity) == (k + 1, "dir", "error") and '"recv"' in p.message


def test_offsets_past_the_end_of_a_track_are_one_warning(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    lines = lines_of(b)
    audio = [i for i, x in enumerate(lines) if x["type"] == "input.audio"]
    with wave.open(str(b / "user.wav")) as w:
        frames = w.getnframes()
    keep = lines[audio[-3]]["offset"]  # the last three blocks now point past the end
    data = (b / "user.wav").read_bytes()[: 44 + 2 * keep]
    (b / "user.wav").write_bytes(data)
    assert frames > keep
    problems = vk.validate_log(b)
    beyond = [p for p in problems if p.file == "events.jsonl"]
    p = only(beyond)
    assert (p.line, p.field, p.severity) == (audio[-3] + 1, "offset", "warning")
    assert "(and 2 later lines)" in p.message and f"{keep} samples" in p.message
    wav = [p for p in problems if p.file == "user.wav"]  # header now stale
    assert [(p.field, p.severity) for p in wav] == [("data", "warning")]


def test_wav_format_errors(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    with wave.open(str(b / "agent.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(2 * 16000 * 30, np.int16).tobytes())
    (b / "user.wav").write_bytes(b"not a wav at all")
    problems = vk.validate_log(b)
    agent = only([p for p in problems if p.file == "agent.wav"])
    assert agent.severity == "error" and "2 channels, 16000 Hz" in agent.message
    user = only([p for p in problems if p.file == "user.wav"])
    assert user.severity == "error" and "RIFF" in user.message
    (b / "user.wav").unlink()
    user = only([p for p in vk.validate_log(b) if p.file == "user.wav"])
    assert user.severity == "warning" and "missing" in user.message


def test_meta_problems(real_bundle, tmp_path) -> None:
    b = copy(real_bundle, tmp_path)
    meta = json.loads((b / "meta.json").read_text())
    (b / "meta.json").write_text(json.dumps({**meta, "sample_rate": 16000, "format": "x/2"}))
    got = {(p.field, p.severity) for p in vk.validate_log(b)}
    assert got == {("format", "error"), ("sample_rate", "error")}
    (b / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "session_id"}))
    p = only(vk.validate_log(b))
    assert (p.file, p.field, p.severity) == ("meta.json", "session_id", "warning")
    (b / "meta.json").unlink()
    p = only(vk.validate_log(b))
    assert (p.file, p.line, p.severity) == ("meta.json", None, "error")
    assert str(p).startswith("meta.json: missing") and p.message.endswith("at least")


def test_only_a_missing_path_raises(tmp_path) -> None:
    with pytest.raises(vk.LogFormatError, match="no such log bundle"):
        vk.validate_log(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    got = {(p.file, p.severity) for p in vk.validate_log(tmp_path / "empty")}
    assert got == {
        ("meta.json", "error"),
        ("events.jsonl", "error"),
        ("user.wav", "warning"),
        ("agent.wav", "warning"),
    }


# -- the documented example ---------------------------------------------------------------
def doc_examples() -> dict[str, str]:
    return dict(re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S))


def doc_turn_table() -> list[dict[str, str]]:
    text = DOC.read_text().split("<!-- example: turns -->\n", 1)[1]
    rows = [r.strip().strip("|").split("|") for r in text.splitlines()[:3]]
    head = [h.strip() for h in rows[0]]
    return [dict(zip(head, (c.strip() for c in rows[2]), strict=True))]


def test_the_example_in_the_docs_is_a_clean_bundle_with_the_turns_it_says(tmp_path) -> None:
    blocks = doc_examples()
    assert set(blocks) == {"meta.json", "events.jsonl", "tracks.py"}
    (tmp_path / "meta.json").write_text(blocks["meta.json"])
    (tmp_path / "events.jsonl").write_text(blocks["events.jsonl"])
    assert len(blocks["events.jsonl"].splitlines()) >= 12
    subprocess.run([sys.executable, "-c", blocks["tracks.py"]], cwd=tmp_path, check=True)
    assert vk.validate_log(tmp_path) == []
    turns = vk.load_log(tmp_path).turns
    (expected,) = doc_turn_table()
    assert len(turns) == 1
    row = turns.iloc[0]
    for column, text in expected.items():
        value = row[column]
        if isinstance(value, (bool, np.bool_)):
            assert str(bool(value)) == text, column
        elif isinstance(value, (int, float, np.integer, np.floating)):
            assert float(value) == pytest.approx(float(text), abs=1e-6), column
        else:
            assert str(value) == text, column


def test_the_docs_list_every_field_of_the_schema() -> None:
    """Each line type's table in docs/log-format.md has exactly the schema's fields, each
    marked required / recommended / optional as the schema says."""
    doc = DOC.read_text()
    schema = load_schema("events")
    for kind, sub in schema["$defs"].items():
        m = re.search(rf"^#### `{re.escape(kind)}`\n(.*?)(?=^#|\Z)", doc, re.S | re.M)
        assert m, f"docs/log-format.md has no section for {kind}"
        rows = dict(re.findall(r"^\| `([^`]+)` \| (\w+) \|", m.group(1), re.M))
        fields = {f for f in sub["properties"] if f != "dir"}
        assert set(rows) == fields, kind
        for f in fields:
            status = (
                "required"
                if f in sub.get("required", ())
                else "recommended"
                if f in sub.get("x-recommended", ())
                else "optional"
            )
            assert rows[f] == status, (kind, f)
    meta = load_schema("meta")
    for f in meta["properties"]:
        assert f"| `{f}` |" in doc, f


def test_the_schemas_are_valid_and_use_only_what_the_validator_compiles() -> None:
    for name in ("meta", "events"):
        schema = load_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)

        def walk(node: object) -> None:
            if isinstance(node, dict):
                assert set(node) <= KEYWORDS | {"properties"} or "type" in node or node
                for key, value in node.items():
                    if key in ("properties", "$defs"):
                        for sub in value.values():
                            assert set(sub) <= KEYWORDS, set(sub) - KEYWORDS
                            walk(sub)
                    elif isinstance(value, dict):
                        walk(value)

        walk(schema)


def test_protocol_events_agree_with_the_schema() -> None:
    """Every protocol event has a schema entry; its required fields (as logged: audio and
    resume tokens dropped, offsets added) are the protocol's required fields."""
    logged_differently = {
        "input.audio": {"offset", "samples"},  # base64 'audio' dropped
        "reply.audio": {"reply_id", "samples"},  # base64 'data' dropped; reply_id needed
    }
    defs = load_schema("events")["$defs"]
    for direction, table in (("send", CLIENT_EVENTS), ("recv", SERVER_EVENTS)):
        for kind, cls in table.items():
            if kind == "error":  # an alias: logged as session.error
                continue
            assert kind in defs, kind
            assert defs[kind]["properties"]["dir"]["const"] == direction, kind
            wanted = {n for n, (_, req) in cls.FIELDS.items() if req}
            assert set(required_fields(kind)) == logged_differently.get(kind, wanted), kind
            for name, (label, _) in cls.FIELDS.items():
                if (kind, name) in {("input.audio", "audio"), ("reply.audio", "data")}:
                    continue  # the base64 audio is never logged
                if (kind, name) == ("session.ready", "resume_token"):
                    continue  # nor is a credential
                assert name in defs[kind]["properties"], (kind, name)
                if kind in logged_differently:
                    continue  # the log is stricter than the wire there
                schema_type = defs[kind]["properties"][name].get("type")
                nullable = isinstance(schema_type, list) and "null" in schema_type
                assert nullable == label.endswith("?"), (kind, name, label)


def test_a_big_bundle_validates(tmp_path) -> None:
    """Size is no problem (the benchmark in the docs: 200,000 lines in about a second)."""
    src = EXAMPLE_LOGS[0]
    b = tmp_path / "big"
    shutil.copytree(src, b)
    lines = lines_of(src)
    span = lines[-1]["t"] + 1
    write_lines(b, [{**x, "t": x["t"] + k * span} for k in range(10) for x in lines])
    assert vk.validate_log(b) == []


# -- the command line ---------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "voicekit", "validate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_exit_codes_and_output(real_bundle, tmp_path) -> None:
    ok = run_cli(str(real_bundle))
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": ok"), ok.stdout + ok.stderr
    warned = copy(real_bundle, tmp_path)
    with (warned / "events.jsonl").open("a") as f:
        f.write('{"t": 99.0, "dir"')
    out = run_cli(str(warned))
    assert out.returncode == 0 and "0 errors, 1 warning" in out.stdout
    assert f"{warned}/events.jsonl:" in out.stdout and "[warning]" in out.stdout
    (warned / "meta.json").unlink()
    out = run_cli(str(warned), str(real_bundle))
    assert out.returncode == 1, out.stdout
    assert f"{warned}/meta.json: missing" in out.stdout
    assert "2 bundles: 1 error, 1 warning" in out.stdout
    quiet = run_cli("--quiet", str(warned))
    assert quiet.returncode == 1 and quiet.stdout.strip() == f"{warned}: 1 error, 1 warning"
    parent = run_cli("-q", str(ROOT / "notebooks" / "example-logs"))
    assert parent.returncode == 0 and "2 bundles: ok" in parent.stdout
    missing = run_cli(str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no such log bundle" in missing.stderr
