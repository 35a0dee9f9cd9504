"""Command line: ``python -m voicekit talk | demo | serve | report | validate | hosted``.

``report`` takes log bundles and call recordings (``report call.wav``) alike.
``validate`` checks bundles against the ``voicekit-log/1`` format (exit 1 on any error).
``hosted list | download | report`` read the service's session history
(:mod:`voicekit.hosted`); the key comes from ``ASSEMBLYAI_API_KEY`` only (a key on the
command line would stay in the shell's history), ``--url`` points at a stand-in agent instead.

Face layer: thin wrappers over the library. Errors print one line saying what to do.

Exit codes: 0 success (for ``talk`` and ``serve``, Ctrl-C is the normal end), 1 runtime
failure (a message says what failed), 2 bad usage, 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from voicekit._version import __version__
from voicekit.errors import ConfigError, VoiceKitError

__all__ = ["main"]

EPILOG_SERVE = """examples:
  python -m voicekit serve                  # ws://127.0.0.1:8765/v1/ws
  python -m voicekit serve --port 0         # a free port
  python -m voicekit serve --host 0.0.0.0 --api-key class-secret   # a whole class
"""


def _serve(args: argparse.Namespace) -> int:
    from voicekit.local import serve

    agent = serve(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        profile=args.profile,
        behaviour=args.behaviour,
        seed=args.seed,
        asr_processes=args.asr_processes,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"voicekit stand-in agent listening on {agent.url}", flush=True)
    print(f"temporary tokens: GET {agent.token_url}?expires_in_seconds=60", flush=True)
    print("press Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        agent.stop()
        print("stopped", flush=True)
    return 0


EPILOG_TALK = """examples:
  python -m voicekit talk                                # the embedded stand-in agent
  python -m voicekit talk --voice ivy --min-silence 400 --keyterm Paddington
  python -m voicekit talk --url ws://10.0.0.5:8765/v1/ws # a stand-in agent for a class
  ASSEMBLYAI_API_KEY=... python -m voicekit talk         # the hosted service
Transcripts stream as they arrive; Ctrl-C ends and prints where the log bundle is.
"""

EPILOG_DEMO = """examples:
  python -m voicekit demo                     # no sound card needed
  python -m voicekit demo --log-dir /tmp/logs --voice claire
Writes a log bundle and an HTML report next to it, and prints the summary.
"""


EPILOG_HOSTED = """examples:
  python -m voicekit hosted list --limit 20               # needs ASSEMBLYAI_API_KEY
  python -m voicekit hosted download sess_0db8... --dir hosted-sessions
  python -m voicekit hosted list --url ws://127.0.0.1:8765/v1/ws   # a stand-in agent
  python -m voicekit hosted report hosted-sessions/sess_0db8...
"""


class _Transcript:
    """Prints a session's conversation as it happens (called on the session's observer thread).

    On a terminal, user partials and the agent's words update one line in place; else only
    final lines are printed.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.partial = False
        self.lock = threading.Lock()

    def _line(self, text: str, final: bool = True) -> None:
        with self.lock:
            if self.tty:
                self.out.write("\r\033[K" + text + ("\n" if final else ""))
            elif final:
                self.out.write(text + "\n")
            self.out.flush()

    def __call__(self, e: Mapping[str, Any]) -> None:
        kind = e["type"]
        if kind == "transcript.user.delta" and self.tty:
            self._line(f"  you: {e.get('text', '')}", final=False)
        elif kind == "transcript.user":
            self._line(f"  you: {e.get('text', '')}")
        elif kind == "transcript.agent":
            mark = " [interrupted]" if e.get("interrupted") else ""
            self._line(f"agent: {e.get('text', '')}{mark}")
        elif kind == "tool.call":
            self._line(f"  [tool] {e.get('name')}({e.get('arguments', '')})")
        elif kind == "error" and e.get("dir") != "local":
            self._line(f"  [agent error] {e.get('message') or e.get('code')}")


def _talk(args: argparse.Namespace) -> int:
    from voicekit.protocol import TurnDetection
    from voicekit.session import Session

    td = TurnDetection(
        vad_threshold=args.vad_threshold,
        min_silence=args.min_silence,
        max_silence=args.max_silence,
        interrupt_response=False if args.no_interrupt else None,
    )
    session = Session(
        url=args.url,
        voice=args.voice,
        keyterms=args.keyterm or None,
        turn_detection=td,
        greeting=args.greeting,
        audio_in=args.input or "mic",
        audio_out=args.output or "speaker",
        input_device=args.input_device,
        output_device=args.output_device,
        log_dir=args.log_dir,
    )
    session.on("*", _Transcript(sys.stdout))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        session.start()
        print(
            f"voicekit talk: {session.backend} agent ready, voice {session.config.voice}; "
            "speak (Ctrl-C ends)",
            flush=True,
        )
        while not stop.wait(0.2) and session.status == "ready":
            pass
    except KeyboardInterrupt:
        pass
    finally:
        log = session.stop()
        if log is not None:
            print(f"\nlog: {log.path}", flush=True)
    if session.status == "error" and session.last_error is not None:
        raise session.last_error
    return 0


def _demo(args: argparse.Namespace) -> int:
    from voicekit.analysis import report
    from voicekit.scripted import BargeIn, Say, ScriptedUser
    from voicekit.session import Session

    def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        return {"city": city, "temp_c": 21, "sky": "clear"}

    user = ScriptedUser(
        [
            Say("hello can you hear me"),
            Say("what is the weather in paris"),
            Say("please tell me about the trains to london tomorrow"),
            BargeIn("no wait stop", after=1.0),
            Say("thank you that is all"),
        ]
    )
    print("voicekit demo: a scripted user talks to the embedded stand-in agent", flush=True)
    session = Session(
        voice=args.voice,
        greeting="Hi! Ask me anything.",
        tools=[get_weather],
        audio_in=user,
        audio_out="null",
        log_dir=args.log_dir,
    )
    session.on("*", _Transcript(sys.stdout))
    with session:
        session.wait(args.timeout)
    log = session.stop()
    html = report(log, log.path / "report.html")
    print(f"\nlog: {log.path}\nreport: {html}\nsummary:", flush=True)
    for key, value in log.summary().items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"  {key:>24}: {shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m voicekit``."""
    parser = argparse.ArgumentParser(
        prog="python -m voicekit",
        description="voicekit: understand and tune voice agents.",
        epilog="exit codes: 0 ok, 1 failure, 2 bad usage, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"voicekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "talk",
        help="talk to an agent with the microphone and speaker",
        description="A conversation in the terminal through this machine's microphone and "
        "speaker, logged like any session.",
        epilog=EPILOG_TALK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", help="an agent's ws:// URL (default: hosted with a key, else local)")
    p.add_argument("--voice", help="the agent's voice, e.g. alba, ivy, claire")
    p.add_argument("--greeting", help="what the agent says first")
    p.add_argument("--vad-threshold", type=float, help="speech probability threshold, 0-1")
    p.add_argument("--min-silence", type=int, help="ms of silence before a confident end of turn")
    p.add_argument("--max-silence", type=int, help="ms of silence that always ends the turn")
    p.add_argument("--no-interrupt", action="store_true", help="the user cannot barge in")
    p.add_argument("--keyterm", action="append", help="a word to recognise (repeatable)")
    p.add_argument("--input-device", help="microphone index or part of its name")
    p.add_argument("--output-device", help="speaker index or part of its name")
    p.add_argument("--input", help=argparse.SUPPRESS)  # a WAV instead of the microphone
    p.add_argument("--output", help=argparse.SUPPRESS)  # "null" or a WAV path
    p.add_argument("--log-dir", default="voicekit-logs", help="where the log bundle goes")
    p.set_defaults(run=_talk)

    p = sub.add_parser(
        "demo",
        help="a scripted conversation, no sound card needed",
        description="A scripted user talks to the embedded stand-in agent; writes a log "
        "bundle and an HTML report, prints the summary.",
        epilog=EPILOG_DEMO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--voice", help="the agent's voice")
    p.add_argument("--log-dir", default="voicekit-logs", help="where the log bundle goes")
    p.add_argument("--timeout", type=float, default=120, help="seconds at most (default 120)")
    p.set_defaults(run=_demo)

    p = sub.add_parser(
        "serve",
        help="run the offline stand-in agent",
        description="Run the offline stand-in agent (real VAD, recognition and synthesis).",
        epilog=EPILOG_SERVE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port, 0 = free (default 8765)")
    p.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    p.add_argument(
        "--profile",
        choices=["hosted", "fast"],
        default="hosted",
        help="timing profile: hosted (measured on the hosted service, default) or fast",
    )
    p.add_argument(
        "--behaviour",
        choices=["observed", "documented"],
        default="observed",
        help="reproduce the hosted service's observed deviations (default) or its docs",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the hosted timing profile")
    p.add_argument(
        "--asr-processes",
        type=int,
        default=2,
        help="speech recognition processes (default 2; about one per core for a large class)",
    )
    p.set_defaults(run=_serve)

    p = sub.add_parser(
        "report",
        help="write an HTML report of log bundles",
        description="Write a self-contained HTML report (summary, plots, turns, transcript).",
    )
    p.add_argument(
        "logs",
        nargs="+",
        metavar="LOG",
        help="bundle directories, parents or globs; or call recordings (audio files, one "
        "channel per party)",
    )
    p.add_argument("-o", "--output", default="voicekit-report.html", help="the HTML file")
    p.add_argument(
        "--user-channel", type=int, default=0, help="a recording's user channel (default 0)"
    )
    p.add_argument(
        "--agent-channel", type=int, default=1, help="a recording's agent channel (default 1)"
    )
    p.set_defaults(run=_report)

    p = sub.add_parser(
        "validate",
        help="check log bundles against the voicekit-log/1 format",
        description="Check log bundles against the voicekit-log/1 format (docs/log-format.md) "
        "and print every problem as FILE:LINE: field 'NAME': what is wrong [severity]. "
        "Exit 0 when no bundle has an error (warnings allowed), 1 otherwise.",
    )
    p.add_argument(
        "bundles",
        nargs="+",
        metavar="BUNDLE",
        help="bundle directories, their events.jsonl, or directories of bundles",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only each bundle's counts")
    p.add_argument(
        "--limit",
        type=int,
        default=50,
        help="print at most this many problems per bundle (default 50; 0: all)",
    )
    p.set_defaults(run=_validate)

    p = sub.add_parser(
        "hosted",
        help="list and download the service's session history",
        description="The service's session history: list sessions, download their recording, "
        "timeline, metadata and config, report on one. The key comes from ASSEMBLYAI_API_KEY.",
        epilog=EPILOG_HOSTED,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hosted = p.add_subparsers(dest="hosted_command", required=True, metavar="ACTION")
    url_help = "a stand-in agent's ws:// URL (default: the hosted service, by the key)"
    h = hosted.add_parser("list", help="print the newest sessions as a table")
    h.add_argument("--limit", type=int, default=20, help="rows at most, 0 = all (default 20)")
    h.add_argument("--status", help="only sessions in this state (completed, active)")
    h.add_argument("--agent-id", help="only sessions of this stored agent")
    h.add_argument("--url", help=url_help)
    h.set_defaults(run=_hosted_list)
    h = hosted.add_parser("download", help="download sessions into DIR/<id>/")
    h.add_argument("ids", nargs="+", metavar="ID", help="session ids (hosted list shows them)")
    h.add_argument(
        "--dir", default="hosted-sessions", help="parent directory (default %(default)s)"
    )
    h.add_argument("--url", help=url_help)
    h.add_argument("--overwrite", action="store_true", help="download complete files again")
    h.add_argument(
        "--wait", type=float, default=0, help="seconds to wait for a session to be ready"
    )
    h.set_defaults(run=_hosted_download)
    h = hosted.add_parser("report", help="write an HTML report of a downloaded session")
    h.add_argument(
        "session", metavar="DIR_OR_ID", help="a downloaded session's directory, or an id"
    )
    h.add_argument("--dir", default="hosted-sessions", help="where an id is downloaded first")
    h.add_argument("--url", help=url_help)
    h.add_argument("-o", "--output", default="voicekit-report.html", help="the HTML file")
    h.set_defaults(run=_hosted_report)
    return parser


def _hosted_list(args: argparse.Namespace) -> int:
    from voicekit import hosted

    if args.limit < 0:
        raise ConfigError(f"--limit ({args.limit}) must be 0 (all) or more", field="limit")
    df = hosted.list_sessions(
        args.limit or None, url=args.url, status=args.status, agent_id=args.agent_id
    )
    if df.empty:
        print("no sessions", flush=True)
        return 0
    shown = df.assign(
        duration=df["duration"].round(1),
        started_at=df["started_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        ended_at=df["ended_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    print(shown.fillna("-").to_string(index=False), flush=True)
    return 0


def _hosted_download(args: argparse.Namespace) -> int:
    from voicekit import hosted

    for session_id in args.ids:
        path = hosted.download(
            session_id, args.dir, url=args.url, overwrite=args.overwrite, wait=args.wait
        )
        print(path, flush=True)
    return 0


def _hosted_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from voicekit import hosted

    path = Path(args.session)
    if not path.is_dir():  # an id: download it first
        path = hosted.download(args.session, args.dir, url=args.url)
    from voicekit.analysis import report
    from voicekit.logformat.hosted import read_hosted

    out = report([read_hosted(path)], args.output)
    print(f"wrote {out}", flush=True)
    return 0


def _bundles(items: Sequence[str]) -> list[Any]:
    """Each argument as bundles: a bundle or its events.jsonl as it is; a directory that
    holds bundles (and is none itself) as each of them, in name order."""
    from pathlib import Path

    out: list[Any] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and not (path / "meta.json").exists():
            children = sorted(p for p in path.iterdir() if (p / "meta.json").is_file())
            if children and not (path / "events.jsonl").exists():
                out.extend(children)
                continue
        out.append(path)
    return out


def _validate(args: argparse.Namespace) -> int:
    from voicekit.logformat.validate import count, validate_log

    totals = {"error": 0, "warning": 0}
    bundles = _bundles(args.bundles)
    for bundle in bundles:
        problems = validate_log(bundle)  # raises (exit 1) only for a path that is not there
        counts = count(problems)
        for key in totals:
            totals[key] += counts[key]
        shown = problems if args.limit <= 0 else problems[: args.limit]
        if not args.quiet:
            for problem in shown:
                print(f"{bundle}/{problem}" if problem.file else f"{bundle}: {problem}")
            if len(shown) < len(problems):
                print(f"{bundle}: ... {len(problems) - len(shown)} more (--limit 0 shows all)")
        status = "ok" if not problems else _plural(counts)
        print(f"{bundle}: {status}", flush=True)
    if len(bundles) > 1:
        print(f"{len(bundles)} bundles: {_plural(totals) if any(totals.values()) else 'ok'}")
    return 1 if totals["error"] else 0


def _plural(counts: Mapping[str, int]) -> str:
    e, w = counts["error"], counts["warning"]
    return f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}"


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from voicekit.analysis import report
    from voicekit.logformat import load_recording

    logs = [
        load_recording(item, args.user_channel, args.agent_channel)
        if Path(item).is_file()  # a bundle is a directory: a file is a recording
        else item
        for item in args.logs
    ]
    path = report(logs, args.output)
    print(f"wrote {path}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except VoiceKitError as exc:
        print(f"voicekit: error: {exc}", file=sys.stderr)
        return 1
