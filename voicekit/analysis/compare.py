"""One session, two views: a client's log lined up with the server's record of it.

Analysis layer. The client's bundle (:class:`~voicekit.logformat.SessionLog`) times every
event by when the client received or sent it; the server's record (a downloaded hosted
session, :func:`voicekit.load_hosted`) times the same conversation on the recording's clock,
0 at ``session.ready``. :func:`compare` estimates the offset between the two clocks from the
events both saw, moves the server's times onto the client's clock and shows, turn by turn,
where the views disagree.

The offset is the median over the matched events of ``client t - server t``: replies are
matched by ``reply_id`` (``reply.started``, ``reply.done``), end-of-turn commits
(``input.speech.stopped``) and ``session.ready`` by their order. Received events reach the
client one network trip after the server stamped them, so the offset includes that one-way
delay; its spread (``attrs["offset_spread"]``, the interquartile range) says how steady the
link was.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from voicekit.logformat import SessionLog

__all__ = ["COMPARED", "clock_offset", "compare"]

# (metric, kind): times in seconds (compared after the offset, or as durations), flags, texts
COMPARED = (
    ("u_on", "time"),
    ("u_off", "time"),
    ("a_on", "time"),
    ("fto", "duration"),
    ("endpoint_delay", "duration"),
    ("interrupted", "flag"),
    ("tool", "label"),
    ("text", "text"),
    ("reply_text", "text"),
)
TIMES = ("u_on", "u_off", "a_on")
MATCH_S = 1.5  # turns without a common reply id pair up when their starts are this close
TEXT_ERRORS = 0.25  # word error rate above which two transcripts of one turn disagree


def _pairs(client: SessionLog, server: SessionLog) -> list[tuple[str, float, float]]:
    """(kind, client t, server t) of the events both views have."""
    pairs: list[tuple[str, float, float]] = []
    for kind in ("reply.started", "reply.done"):
        mine = {e.get("reply_id"): e["t"] for e in client.of_type(kind, direction="recv")}
        for e in server.of_type(kind):
            rid = e.get("reply_id")
            if rid is not None and rid in mine:
                pairs.append((kind, mine[rid], e["t"]))
    for kind in ("session.ready", "input.speech.stopped"):
        a = [e["t"] for e in client.of_type(kind, direction="recv")]
        b = [e["t"] for e in server.of_type(kind)]
        if len(a) == len(b):
            pairs.extend((kind, x, y) for x, y in zip(a, b, strict=True))
    return pairs


def clock_offset(client: SessionLog, server: SessionLog) -> dict[str, Any]:
    """The client clock minus the server clock, from the events both logs hold.

    Returns
    -------
    dict
        ``offset`` (seconds; add it to a server time to get the client's), ``spread``
        (interquartile range of the matched differences), ``matched`` (how many events
        paired up) and ``by`` (the event types used).

    Raises
    ------
    ValueError
        When the two logs share no event, or their session ids differ.
    """
    ids = {client.session_id, server.session_id} - {None}
    pairs = _pairs(client, server) if len(ids) <= 1 else []
    if not pairs:
        raise ValueError(
            f"the logs share no event: client session {client.session_id!r}, server session "
            f"{server.session_id!r}; compare a client's bundle with the server's record of the "
            "same session (vk.hosted.download(log.session_id, ...))"
        )
    diffs = np.array([c - s for _, c, s in pairs])
    q1, q3 = np.percentile(diffs, [25, 75])
    return {
        "offset": float(np.median(diffs)),
        "spread": float(q3 - q1),
        "matched": len(pairs),
        "by": sorted({k for k, _, _ in pairs}),
    }


def _match(client: pd.DataFrame, server: pd.DataFrame) -> list[tuple[int | None, int | None]]:
    """Row pairs (client index, server index): by reply id, then by start time."""
    pairs: list[tuple[int | None, int | None]] = []
    used: set[int] = set()
    by_reply = {rid: j for j, rid in enumerate(server["reply_id"]) if isinstance(rid, str)}
    for i, (rid, u_on) in enumerate(zip(client["reply_id"], client["u_on"], strict=True)):
        j = by_reply.get(rid) if isinstance(rid, str) else None
        if j is None or j in used:
            near = (server["u_on"] - u_on).abs()
            near = near[[k not in used for k in range(len(server))]]
            j = int(near.idxmin()) if len(near) and near.min() <= MATCH_S else None
        if j is not None:
            used.add(j)
        pairs.append((i, j))
    pairs.extend((None, j) for j in range(len(server)) if j not in used)
    return sorted(pairs, key=lambda p: _start(client, server, p))


def _start(
    client: pd.DataFrame, server: pd.DataFrame, pair: tuple[int | None, int | None]
) -> float:
    i, j = pair
    if i is not None:
        return float(client["u_on"].iloc[i])
    assert j is not None
    return float(server["u_on"].iloc[j])


def _disagrees(kind: str, a: Any, b: Any, tolerance: float) -> bool:
    if kind in ("time", "duration"):
        if _missing(a) and _missing(b):
            return False
        return _missing(a) or _missing(b) or abs(float(a) - float(b)) > tolerance
    if kind == "text":
        from voicekit.speech.asr import word_errors

        errors, words = word_errors(str(a or ""), str(b or ""))
        return errors > TEXT_ERRORS * max(words, 1)
    if kind == "flag":
        return bool(a) != bool(b)
    return (None if _missing(a) else a) != (None if _missing(b) else b)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def compare(log: SessionLog, hosted: SessionLog, *, tolerance: float = 0.25) -> pd.DataFrame:
    """Line a client's log up with the server's record of the same session, turn by turn.

    Parameters
    ----------
    log
        The client's bundle (``vk.load_log`` or what ``Session.stop()`` returned).
    hosted
        The server's view: a downloaded hosted session (``vk.load_hosted``), or any other log
        of the same session.
    tolerance
        Seconds by which two times (after the clock offset) or durations may differ and
        still agree.

    Returns
    -------
    pandas.DataFrame
        One row a turn seen by either view: ``turn`` (the client's number, NaN for a turn
        only the server has), ``reply_id``, then for each metric of :data:`COMPARED`
        ``<metric>_client``, ``<metric>_server`` (times moved onto the client's clock) and,
        for times and durations, ``<metric>_diff`` (server minus client); ``disagree`` lists
        the metrics that differ beyond ``tolerance`` (texts: a word error rate above 25 %),
        ``only`` says ``"client"`` or ``"server"`` for a turn the other view lacks.
        ``attrs`` holds the clock offset (``offset``, ``offset_spread``, ``matched``).

    Raises
    ------
    ValueError
        When the two logs share no event (not the same session).
    """
    import pandas as pd

    clock = clock_offset(log, hosted)
    offset = clock["offset"]
    mine = log.turns.reset_index(drop=True)
    theirs = hosted.turns.reset_index(drop=True)
    for name in TIMES:
        theirs[name] = theirs[name] + offset
    rows = []
    for i, j in _match(mine, theirs):
        a = mine.iloc[i] if i is not None else None
        b = theirs.iloc[j] if j is not None else None
        reply_id: Any
        if a is not None and isinstance(a["reply_id"], str):
            reply_id = a["reply_id"]
        else:
            reply_id = b["reply_id"] if b is not None else None
        row: dict[str, Any] = {
            "turn": a["turn"] if a is not None else math.nan,
            "reply_id": reply_id,
        }
        differ = []
        for name, kind in COMPARED:
            x: Any = a[name] if a is not None and name in a else None
            y: Any = b[name] if b is not None and name in b else None
            row[f"{name}_client"], row[f"{name}_server"] = x, y
            if kind in ("time", "duration"):
                row[f"{name}_diff"] = math.nan if _missing(x) or _missing(y) else y - x
            if a is not None and b is not None and _disagrees(kind, x, y, tolerance):
                differ.append(name)
        row["disagree"] = ", ".join(differ)
        row["only"] = "client" if b is None else "server" if a is None else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(
        offset=offset, offset_spread=clock["spread"], matched=clock["matched"], by=clock["by"]
    )
    return out
