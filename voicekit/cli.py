"""Command line: ``python -m voicekit serve | demo | report``.

Face layer: thin wrappers over the library. Errors print one line saying what to do.

Exit codes: 0 success, 1 runtime failure (a message says what failed), 2 bad usage,
130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from voicekit._version import __version__
from voicekit.errors import VoiceKitError

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
        seed=args.seed,
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
        choices=["realistic", "fast"],
        default="realistic",
        help="latency profile (default realistic)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the realistic delays")
    p.set_defaults(run=_serve)

    p = sub.add_parser(
        "report",
        help="write an HTML report of log bundles",
        description="Write a self-contained HTML report (summary, plots, turns, transcript).",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="bundle directories, parents or globs")
    p.add_argument("-o", "--output", default="voicekit-report.html", help="the HTML file")
    p.set_defaults(run=_report)
    return parser


def _report(args: argparse.Namespace) -> int:
    from voicekit.analysis import report

    path = report(list(args.logs), args.output)
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
