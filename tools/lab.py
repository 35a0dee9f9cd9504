"""Start JupyterLab for ``make lab``, wherever a newcomer runs it.

Usage (the Makefile's ``lab`` target): ``python tools/lab.py --port=8888 NOTEBOOK``; every
argument goes on to ``jupyter lab``. On top of them:

- as root (a container, a cloud VM) ``--allow-root``, without which JupyterLab refuses to start;
- on Linux with no display (no ``DISPLAY`` or ``WAYLAND_DISPLAY``: ssh, a container)
  ``--no-browser``: there is no browser to open, and a text-mode one (lynx, w3m) would take
  over the terminal; JupyterLab prints the URL to open;
- with the port taken, the next free one (``--port-retries`` stays on for a port taken in the
  meantime), said in one line before JupyterLab starts.

Standard library only (and tornado, which JupyterLab runs on, to test ports exactly as the
Jupyter server binds them); it does not import voicekit.
"""

from __future__ import annotations

import errno
import os
import sys

PORT_RETRIES = 50


def port_is_free(port: int, ip: str) -> bool:
    """Whether the Jupyter server could listen on ``ip:port`` (tested the way it binds)."""
    from tornado.netutil import bind_sockets

    try:
        sockets = bind_sockets(port, ip)
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    for s in sockets:
        s.close()
    return True


def split_option(args: list[str], name: str) -> tuple[list[str], str | None]:
    """``args`` without ``--name=value`` / ``--name value``, and the (last) value, or None."""
    rest: list[str] = []
    value = None
    it = iter(args)
    for arg in it:
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}":
            value = next(it, "")
        else:
            rest.append(arg)
    return rest, value


def main(argv: list[str]) -> int:
    args, port_text = split_option(argv, "port")
    port_text = "8888" if port_text is None else port_text.strip()
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        print(f"make lab: LAB_PORT must be a port number, not {port_text!r}", file=sys.stderr)
        return 2
    wanted = port = int(port_text)
    ip = split_option(args, "ip")[1] or "localhost"

    notes = []
    if wanted:  # 0: any free port, picked by the system
        last = min(wanted + PORT_RETRIES, 65535)
        # none free: JupyterLab tries ports further away itself, and says which
        port = next((p for p in range(wanted, last + 1) if port_is_free(p, ip)), wanted)
        if port != wanted:
            notes.append(f"port {wanted} is in use (another JupyterLab?), so it takes port {port}")
    args += [f"--port={port}", f"--port-retries={PORT_RETRIES}"]

    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        args.append("--allow-root")
        notes.append("running as root (--allow-root)")
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    browser_chosen = any(a == "--no-browser" or a.startswith("--browser") for a in args)
    if sys.platform.startswith("linux") and headless and not browser_chosen:
        args.append("--no-browser")
        notes.append("no display, so no browser opens")
    notes.append("open the URL with its token that JupyterLab prints below")
    print("make lab: " + "; ".join(notes), file=sys.stderr, flush=True)

    os.execv(sys.executable, [sys.executable, "-m", "jupyterlab", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
