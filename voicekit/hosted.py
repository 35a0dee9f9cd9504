"""Session history: list the service's past sessions and download their recordings.

Runtime layer, a REST client beside :mod:`voicekit.agents` (the plumbing is shared, in
:mod:`voicekit._rest`). The calls go to the service a ``vk.Session`` with the same
arguments would talk to, with the same key:

- ``api_key=`` or ``ASSEMBLYAI_API_KEY``: the hosted service, ``https://agents.assemblyai.com``;
- ``url=`` (a session's WebSocket address, e.g. ``agent.url`` of ``vk.local.serve()``): the
  HTTP service on the same host and port, such as the stand-in agent's own history;
- no key: the embedded stand-in agent, when it is running (else there is no history).

Shapes follow live observations: ``GET /v1/sessions?limit=N`` pages newest first
(``has_more``, ``response_metadata.next_cursor``, passed back as ``cursor=``);
``GET /v1/sessions/{id}`` gives the record with ``artifacts: [{type, url, content_type}]``
(``audio`` ``audio/ogg``, ``timeline`` and ``metadata`` ``application/json``), pre-signed
URLs valid an hour and listed a few seconds after the session ends.

A downloaded session is a directory ``<dir>/<session id>/``:

- ``recording.ogg``: the call, Ogg/Opus stereo 24 kHz, left = user, right = agent;
- ``timeline.json``: the service's turns (times in ms from the session's start);
- ``metadata.json``: the recording's facts (channels, sample rate, chunks);
- ``config.json``: the session's configuration;
- ``session.json``: the record, its artifacts without their URLs (written last: a directory
  with it is complete).

Neither the key nor a pre-signed URL (a credential while it is valid) is written to a
file, a log record or an exception. Downloads are resumable: each file is written as
``<name>.part`` and renamed when complete; a rerun skips complete files and continues a
``.part`` with an HTTP ``Range`` request.

Examples
--------
>>> df = vk.hosted.list_sessions(limit=50)
>>> path = vk.hosted.download(df.id[0], "hosted-sessions")
>>> sorted(p.name for p in path.iterdir())
['config.json', 'metadata.json', 'recording.ogg', 'session.json', 'timeline.json']
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import voicekit._rest as _rest
from voicekit._rest import DEFAULT_TIMEOUT_S
from voicekit._secrets import mask
from voicekit.errors import ConfigError, ServerError
from voicekit.errors import ConnectionError as VKConnectionError

if TYPE_CHECKING:
    import pandas as pd

    from voicekit.logformat.hosted import HostedSession

__all__ = ["COLUMNS", "DEFAULT_DIR", "download", "download_all", "list_sessions", "load_hosted"]

log = logging.getLogger("voicekit.hosted")

COLUMNS = ("id", "agent_id", "status", "close_reason", "duration", "started_at", "ended_at")
"""The columns of :func:`list_sessions`."""

SESSIONS_PATH = "/v1/sessions"
PAGE_SIZE = 100  # sessions asked for per request (the service's most)
PROGRESS_AFTER_PAGES = 2  # list_sessions shows a progress bar from the third page on
POLL_S = 0.5  # download(wait=...) asks again this often
CHUNK = 1 << 16
DEFAULT_DIR = "hosted-sessions"  # where load_hosted(session_id) downloads to
RESUMES = 2  # a body cut off mid-way is resumed this many times in one call
SESSION_FILE, CONFIG_FILE = "session.json", "config.json"
_STEMS = {"audio": "recording"}  # artifact type -> file name stem (else the type itself)
_EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/mpeg": ".mp3",
    "application/json": ".json",
}
_ADVICE = {"session_not_found": "vk.hosted.list_sessions() shows the sessions there are"}
_NOT_FOUND = ("session_not_found", "not_found", "http_404")


# -- checking arguments ----------------------------------------------------------------------
def _history_api(
    backend: str, url: str | None, api_key: str | None, timeout: float
) -> _rest.Api | None:
    """The service to ask; ``None`` for an embedded stand-in agent that is not running."""
    return _rest.api(backend, url, api_key, timeout, start=False, what="the session history")


def _check_id(session_id: object) -> str:
    text = session_id.strip() if isinstance(session_id, str) else ""
    if not text or text in (".", "..") or any(c in text for c in "/\\\0") or len(text) > 200:
        raise ConfigError(
            f"session_id must be a session's id such as 'sess_3f2a...' "
            f"(vk.hosted.list_sessions() shows them), got {session_id!r}",
            field="session_id",
        )
    return text


def _check_count(value: object, field: str, low: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"{field} ({value!r}) must be a whole number >= {low}, or None for all", field=field
        )
    return value


def _check_since(since: object) -> pd.Timestamp | None:
    import pandas as pd

    if since is None:
        return None
    if not isinstance(since, (str, datetime.datetime, pd.Timestamp)):
        raise ConfigError(
            f"since ({since!r}) must be a time: an ISO 8601 string such as "
            "'2026-09-24T10:00:00Z', a datetime or a pandas Timestamp",
            field="since",
        )
    try:
        moment = pd.Timestamp(since)
    except ValueError:
        raise ConfigError(
            f"since ({since!r}) is not a time; use ISO 8601 such as '2026-09-24T10:00:00Z'",
            field="since",
        ) from None
    # a time without a zone is taken as UTC
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _check_wait(wait: object) -> float:
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait >= 0:
        raise ConfigError(
            f"wait ({wait!r}) must be seconds >= 0 (0: do not wait for a session to be ready)",
            field="wait",
        )
    return float(wait)


def _check_dir(directory: object) -> Path:
    if not isinstance(directory, (str, os.PathLike)) or not str(directory):
        raise ConfigError(
            f"dir ({directory!r}) must be a directory path, e.g. dir='hosted-sessions'",
            field="dir",
        )
    return Path(directory)


# -- listing ---------------------------------------------------------------------------------
def _pages(api: _rest.Api, page_size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Every page of ``GET /v1/sessions``, following ``next_cursor``."""
    query = {"limit": str(page_size)}
    seen: set[str] = set()
    while True:
        page = _rest.request(api, "GET", SESSIONS_PATH, query=query, advice=_ADVICE)
        if not isinstance(page, Mapping):
            raise ServerError(
                f"GET {api.base}{SESSIONS_PATH} answered {type(page).__name__}, not a page of "
                "sessions; is this a voice agent service?",
                code="invalid_response",
            )
        yield [s for s in page.get("sessions") or [] if isinstance(s, Mapping)]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor or cursor in seen:
            return
        seen.add(str(cursor))
        query = {"limit": str(page_size), "cursor": str(cursor)}


def _row(summary: Mapping[str, Any]) -> dict[str, Any]:
    duration = summary.get("duration_seconds")
    return {
        "id": summary.get("id"),
        "agent_id": summary.get("agent_id"),
        "status": summary.get("status"),
        "close_reason": summary.get("public_close_reason"),
        "duration": float(duration) if isinstance(duration, (int, float)) else math.nan,
        "started_at": summary.get("created_at"),
        "ended_at": summary.get("ended_at"),
    }


def _time(value: Any) -> Any:
    """A UTC Timestamp, or None for no time."""
    import pandas as pd

    try:
        moment: Any = pd.Timestamp(value)  # NaT for None
    except (TypeError, ValueError):
        return None
    if pd.isna(moment):
        return None
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("id", "agent_id", "status", "close_reason"):
        df[column] = df[column].astype(object)
    df["duration"] = pd.to_numeric(df["duration"], errors="coerce").astype(float)
    for column in ("started_at", "ended_at"):
        moments = pd.to_datetime(df[column], utc=True, format="ISO8601", errors="coerce")
        df[column] = moments.dt.as_unit("ns")
    return df


def _progress(total: int | None, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, leave=False)


def list_sessions(
    limit: int | None = None,
    *,
    api_key: str | None = None,
    url: str | None = None,
    agent_id: str | None = None,
    status: str | None = None,
    since: str | datetime.datetime | pd.Timestamp | None = None,
    backend: str = "auto",
    page_size: int = PAGE_SIZE,
    progress: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> pd.DataFrame:
    """The service's sessions, newest first, one row each (``GET /v1/sessions``).

    Parameters
    ----------
    limit : int, optional
        At most this many rows (after the filters); ``None``: every session there is.
    api_key, url, backend
        Which service, as for :class:`voicekit.Session`: the key (or
        ``ASSEMBLYAI_API_KEY``) for the hosted service; ``url=`` an agent's WebSocket
        address (``agent.url`` of ``vk.local.serve()``) for the history on its host and port.
        With neither, the embedded stand-in agent's history (empty when it is not running).
    agent_id : str, optional
        Only sessions bound to this stored agent (filtered here).
    status : str, optional
        Only sessions in this state, ``"completed"`` or ``"active"`` (filtered here).
    since : str, datetime or Timestamp, optional
        Only sessions started at or after this time (a time without a zone is UTC).
        Paging stops at the first page started wholly before it.
    page_size : int
        Sessions asked for per request, 1-100.
    progress : bool, optional
        Show a progress bar (tqdm); ``None``: only once the listing takes more than
        ``PROGRESS_AFTER_PAGES`` pages.
    timeout : float
        Seconds to wait for each answer.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``id``, ``agent_id``, ``status``, ``close_reason`` (the
        service's ``public_close_reason``), ``duration`` (seconds, float), ``started_at`` and
        ``ended_at`` (UTC Timestamps; ``NaT`` while a session is active). No sessions: an
        empty frame with these columns.

    Raises
    ------
    ConfigError
        For arguments that are wrong before anything is sent (``field`` names it).
    ServerError
        For the service's refusal (``code`` ``"unauthorized"`` for a wrong or missing key).
    voicekit.ConnectionError
        When the service cannot be reached.
    """
    limit = _check_count(limit, "limit")
    if _check_count(page_size, "page_size") is None or page_size > PAGE_SIZE:
        raise ConfigError(
            f"page_size ({page_size!r}) must be 1-{PAGE_SIZE} (the service's most)",
            field="page_size",
        )
    for field, value in (("agent_id", agent_id), ("status", status)):
        if value is not None and not (isinstance(value, str) and value):
            raise ConfigError(f"{field} ({value!r}) must be a string, or None for all", field=field)
    start = _check_since(since)
    api = _history_api(backend, url, api_key, timeout)
    rows: list[dict[str, Any]] = []
    if api is None:
        return _frame(rows)
    bar: Any = None
    try:
        for number, page in enumerate(_pages(api, page_size), 1):
            before = len(rows)
            older = 0
            for summary in page:
                moment = _time(summary.get("created_at"))
                if start is not None and moment is not None and moment < start:
                    older += 1
                    continue
                if agent_id is not None and summary.get("agent_id") != agent_id:
                    continue
                if status is not None and summary.get("status") != status:
                    continue
                rows.append(_row(summary))
                if limit is not None and len(rows) >= limit:
                    break
            if bar is None and (progress or (progress is None and number > PROGRESS_AFTER_PAGES)):
                bar = _progress(limit, "session")
                bar.update(before)
            if bar is not None:
                bar.update(len(rows) - before)
            if (limit is not None and len(rows) >= limit) or (page and older == len(page)):
                break
    finally:
        if bar is not None:
            bar.close()
    return _frame(rows)


# -- one session's record ----------------------------------------------------------------------
def _record(api: _rest.Api, session_id: str) -> dict[str, Any]:
    """``GET /v1/sessions/{id}``; an unknown id is a :class:`ServerError` naming it."""
    path = f"{SESSIONS_PATH}/{urllib.parse.quote(session_id, safe='')}"
    try:
        record = _rest.request(api, "GET", path, advice=_ADVICE)
    except ServerError as exc:
        if exc.code in _NOT_FOUND:
            raise _unknown(session_id, api.base, f"GET {path}: not found") from None
        raise
    if not isinstance(record, Mapping) or not isinstance(record.get("artifacts", []), list):
        raise ServerError(
            f"GET {api.base}{path} answered with no session record; is this a voice agent service?",
            code="invalid_response",
        )
    return dict(record)


def _unknown(session_id: str, base: str, detail: str = "") -> ServerError:
    said = f" ({detail})" if detail else ""
    return ServerError(
        f"no session {session_id!r} at {base}{said}; vk.hosted.list_sessions() shows the "
        "sessions there are (pass the same url= or api_key=)",
        code="session_not_found",
        param="session_id",
    )


def _not_ready(record: Mapping[str, Any], session_id: str) -> ServerError | None:
    """Why the record's files cannot be downloaded yet, or None."""
    if record.get("status") == "active":
        return ServerError(
            f"session {session_id!r} is still active: its recording and timeline are kept "
            "once it ends. End it, then retry in a few seconds, or pass wait=<seconds> to "
            "poll until they are ready",
            code="session_active",
            param="session_id",
        )
    artifacts = record.get("artifacts") or []
    if not artifacts or not all(isinstance(a, Mapping) and a.get("url") for a in artifacts):
        return ServerError(
            f"session {session_id!r} has ended but its recording, timeline and metadata are "
            "not ready yet (the service lists them a few seconds after the end); retry in a "
            "few seconds, or pass wait=<seconds> to poll",
            code="artifacts_not_ready",
            param="session_id",
        )
    return None


def _ready_record(api: _rest.Api, session_id: str, wait: float) -> dict[str, Any]:
    """The record once its artifacts are listed, polling for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        record = _record(api, session_id)
        problem = _not_ready(record, session_id)
        if problem is None:
            return record
        left = deadline - time.monotonic()
        if left <= 0:
            if wait > 0:
                raise ServerError(
                    f"{problem.server_message} (waited {wait:g} s)",
                    code=problem.code,
                    param="session_id",
                )
            raise problem
        time.sleep(min(POLL_S, left))


def _file_name(artifact: Mapping[str, Any]) -> str:
    """``recording.ogg``, ``timeline.json``, ``metadata.json``: the type's stem, the content
    type's extension."""
    kind = re.sub(r"[^A-Za-z0-9_-]", "_", str(artifact.get("type") or "artifact"))
    content_type = str(artifact.get("content_type") or "").split(";")[0].strip().lower()
    return _STEMS.get(kind, kind) + _EXTENSIONS.get(content_type, ".bin")


def _signed(value: str) -> bool:
    """Whether a string is a URL with a query (a pre-signed URL is a credential)."""
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.query)


def _without_urls(value: Any) -> Any:
    """A copy of a JSON value without the fields that hold URLs with queries."""
    if isinstance(value, Mapping):
        return {
            k: _without_urls(v) for k, v in value.items() if not (isinstance(v, str) and _signed(v))
        }
    if isinstance(value, list):
        return [_without_urls(v) for v in value if not (isinstance(v, str) and _signed(v))]
    return value


def _public_record(record: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """What ``session.json`` holds: the record, artifacts as ``{type, content_type, file}``."""
    out = _without_urls({k: v for k, v in record.items() if k != "artifacts"})
    out["artifacts"] = [
        {"type": a.get("type"), "content_type": a.get("content_type"), "file": names[a["type"]]}
        for a in record.get("artifacts") or []
        if isinstance(a, Mapping) and a.get("type") in names
    ]
    return dict(out)


def _write_json(path: Path, value: Any) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    part.replace(path)


def _complete(directory: Path) -> bool:
    """Whether a session directory holds a finished download (``session.json`` is last)."""
    try:
        record = json.loads((directory / SESSION_FILE).read_text(encoding="utf-8"))
        files = [a["file"] for a in record["artifacts"]] + [CONFIG_FILE]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(record["artifacts"]) and all((directory / f).is_file() for f in files)


# -- one artifact --------------------------------------------------------------------------
class _Refused(Exception):
    """An artifact URL was refused (403): expired or otherwise no longer valid."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(str(error))
        self.error = error


def _where(url: str) -> str:
    """``GET scheme://host/path`` of a URL: the query (the signature) left out."""
    parts = urllib.parse.urlsplit(url)
    return f"GET {parts.scheme}://{parts.netloc}{parts.path}"


def _url_secrets(url: str, api: _rest.Api) -> list[str]:
    query = urllib.parse.urlsplit(url).query
    values = [v for _, v in urllib.parse.parse_qsl(query) if len(v) >= 8]
    return [*api.secrets, *([query] if query else []), *values]


def _s3_error(raw: bytes) -> bytes:
    """An S3-style XML error (``<Code>AccessDenied</Code>``) as the JSON ``api_error`` reads."""
    text = raw.decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    if code is None:
        return raw
    message = re.search(r"<Message>([^<]*)</Message>", text)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", code.group(1)).lower()
    return json.dumps({"code": snake, "message": message.group(1) if message else ""}).encode()


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(first byte, total)`` of a ``Content-Range: bytes a-b/n`` (or ``bytes */n``)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    first, total = match.groups()
    return (int(first) if first else None), (int(total) if total and total != "*" else None)


def _fetch(url: str, path: Path, api: _rest.Api) -> int:
    """Download one artifact to ``path`` through ``path.part``; returns the bytes received.

    A complete ``path`` is kept; a ``.part`` is continued with ``Range: bytes=N-`` (a 200
    answer starts it again). A body cut off mid-way is resumed ``RESUMES`` times, then a
    :class:`voicekit.ConnectionError` says to run the download again.

    Raises
    ------
    _Refused
        On 403 (an expired URL): the caller gets fresh URLs.
    """
    if path.is_file():
        return 0
    part = path.with_name(path.name + ".part")
    secrets = _url_secrets(url, api)
    where = _where(url)
    received = 0
    for _ in range(RESUMES + 1):
        have = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": _rest.user_agent(), "Accept": "*/*"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = _rest.opener(url).open(request, timeout=api.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
                content_range = exc.headers.get("Content-Range")
            if exc.code == 416 and have:  # nothing after byte N: done, or not this file
                if _content_range(content_range)[1] == have:
                    part.replace(path)
                    return received
                part.unlink()
                continue
            error = _rest.api_error(exc.code, _s3_error(raw), where, secrets)
            if exc.code == 403:
                raise _Refused(error) from None
            raise error from None
        except (urllib.error.URLError, OSError) as exc:
            raise _rest.connection_error(exc, where, api.timeout, secrets) from None
        with response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if response.status == 206:
                first, _ = _content_range(response.headers.get("Content-Range"))
                if first != have:  # not the range asked for: start again
                    part.unlink(missing_ok=True)
                    continue
                mode = "ab"
                log.debug("%s: resuming at byte %d", path.name, have)
            else:  # 200: the whole file (a server without ranges ignores Range)
                mode, have = "wb", 0
            body = 0
            with open(part, mode) as f:
                try:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        body += len(chunk)
                except (http.client.HTTPException, OSError):
                    pass  # cut off: what arrived stays in the .part
            received += body
        if expected is None or body == expected:
            part.replace(path)
            return received
        log.debug("%s: cut off after %d of %s bytes", path.name, have + body, expected)
    raise VKConnectionError(
        mask(
            f"{where}: the download of {path.name} was cut off {RESUMES + 1} times; run the "
            f"download again to resume it (the part received is kept in {part})",
            secrets,
        )
    )


# -- downloading -------------------------------------------------------------------------------
def download(
    session_id: str,
    dir: str | os.PathLike[str] = ".",
    *,
    api_key: str | None = None,
    url: str | None = None,
    overwrite: bool = False,
    wait: float = 0.0,
    backend: str = "auto",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download one session's recording, timeline, metadata and config.

    Writes ``<dir>/<session_id>/``: ``recording.ogg`` (stereo 24 kHz, left = user, right =
    agent), ``timeline.json``, ``metadata.json``, ``config.json`` and, last,
    ``session.json`` (the record, its artifacts without their pre-signed URLs). Each file is
    written as ``<name>.part`` and renamed when complete: a rerun skips complete files and
    continues a ``.part`` with a ``Range`` request. Expired URLs (403) are replaced once
    by fresh ones from the record.

    Parameters
    ----------
    session_id : str
        The session's id (``list_sessions().id``; ``vk.Session.session_id``).
    dir : str or path
        The parent directory (created if needed).
    api_key, url, backend
        Which service, as for :func:`list_sessions`.
    overwrite : bool
        Download every file again, even complete ones.
    wait : float
        Seconds to poll (every ``POLL_S``) while the session is still active or its
        artifacts are not listed yet; 0: fail at once, saying so.
    timeout : float
        Seconds to wait for each answer.

    Returns
    -------
    pathlib.Path
        The session's directory.

    Raises
    ------
    ConfigError
        For arguments that are wrong before anything is sent (``field`` names it).
    ServerError
        ``code`` ``"session_not_found"`` (an id the service does not know, named in the
        message), ``"session_active"`` or ``"artifacts_not_ready"`` (retry in a few seconds,
        or pass ``wait=``), ``"unauthorized"`` (a wrong or missing key), or a refusal of
        the artifact URLs after fresh ones were fetched.
    voicekit.ConnectionError
        When the service cannot be reached, or a file kept being cut off (run it again).
    """
    session_id = _check_id(session_id)
    root = _check_dir(dir)
    wait = _check_wait(wait)
    api = _history_api(backend, url, api_key, timeout)
    if api is None:
        raise _unknown(session_id, "the embedded stand-in agent", "it is not running")
    return _download(api, session_id, root, bool(overwrite), wait)


def _download(api: _rest.Api, session_id: str, root: Path, overwrite: bool, wait: float) -> Path:
    target = root / session_id
    if not overwrite and _complete(target):
        return target
    record = _ready_record(api, session_id, wait)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {target}: {exc.strerror}; pass another dir=...", field="dir"
        ) from None
    names = {str(a["type"]): _file_name(a) for a in record["artifacts"]}
    if overwrite:
        for name in [*names.values(), CONFIG_FILE, SESSION_FILE]:
            for stale in (target / name, target / f"{name}.part"):
                stale.unlink(missing_ok=True)
    refreshed = False
    for kind, name in names.items():
        while True:
            artifact = next(a for a in record["artifacts"] if a.get("type") == kind)
            try:
                got = _fetch(str(artifact["url"]), target / name, api)
                log.debug("%s/%s: %d bytes received", session_id, name, got)
                break
            except _Refused as refused:
                if refreshed:
                    raise ServerError(
                        f"{refused.error.server_message}; the URLs fetched again for session "
                        f"{session_id!r} were refused too: retry later",
                        code=refused.error.code,
                    ) from None
                refreshed = True  # expired (URLs last an hour): ask the record for fresh ones
                log.debug("%s: artifact URL refused; fetching fresh URLs", session_id)
                record = _ready_record(api, session_id, 0.0)
                if kind not in {a.get("type") for a in record["artifacts"]}:
                    raise refused.error from None
    _write_json(target / CONFIG_FILE, _without_urls(record.get("config") or {}))
    _write_json(target / SESSION_FILE, _public_record(record, names))
    return target


def download_all(
    dir: str | os.PathLike[str] = ".",
    limit: int | None = None,
    *,
    api_key: str | None = None,
    url: str | None = None,
    agent_id: str | None = None,
    since: str | datetime.datetime | pd.Timestamp | None = None,
    overwrite: bool = False,
    wait: float = 0.0,
    backend: str = "auto",
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[Path]:
    """Download the newest ``limit`` ended sessions (:func:`download` each) into ``dir``.

    Sessions already downloaded are skipped without a request; sessions whose artifacts
    are not listed yet are polled for up to ``wait`` seconds each, then skipped with a log
    message (run it again later).

    Parameters
    ----------
    dir : str or path
        The parent directory: one subdirectory per session.
    limit : int, optional
        At most this many sessions, newest first; ``None``: all.
    api_key, url, backend, agent_id, since
        As for :func:`list_sessions`.
    overwrite : bool
        Download every file again.
    wait : float
        Seconds to poll each session whose artifacts are not listed yet (they are, a few
        seconds after it ends); 0: skip it at once.
    progress : bool
        Show a progress bar (tqdm), one step a session.
    timeout : float
        Seconds to wait for each answer.

    Returns
    -------
    list of pathlib.Path
        The directories of the sessions downloaded (or found complete), newest first.
    """
    root = _check_dir(dir)
    wait = _check_wait(wait)
    sessions = list_sessions(
        limit,
        api_key=api_key,
        url=url,
        agent_id=agent_id,
        status="completed",
        since=since,
        backend=backend,
        progress=None if progress else False,
        timeout=timeout,
    )
    api = _history_api(backend, url, api_key, timeout)
    paths: list[Path] = []
    if api is None or sessions.empty:
        return paths
    bar = _progress(len(sessions), "session") if progress else None
    try:
        for session_id in sessions["id"]:
            try:
                paths.append(_download(api, _check_id(session_id), root, overwrite, wait))
            except ServerError as exc:
                if exc.code not in ("session_active", "artifacts_not_ready"):
                    raise
                log.warning("voicekit.hosted: %s skipped: %s", session_id, exc.server_message)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return paths


def load_hosted(
    dir_or_session_id: str | os.PathLike[str],
    *,
    dir: str | os.PathLike[str] = DEFAULT_DIR,
    api_key: str | None = None,
    url: str | None = None,
    wait: float = 0.0,
    backend: str = "auto",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> HostedSession:
    """Read a hosted session as a log: ``h.turns``, ``h.barge_ins``, ``h.summary()``,
    ``vk.plot_timeline(h)``; given a session's id, download it first.

    Parameters
    ----------
    dir_or_session_id : str or path
        A directory :func:`download` wrote (``dir/<session_id>``, or ``dir`` when it holds
        one session), or a session's id (``list_sessions().id``): unless
        ``<dir>/<session_id>`` is complete already, it is downloaded there first.
    dir : str or path
        Where a session given by id is downloaded (default ``hosted-sessions``).
    api_key, url, backend, wait, timeout
        Which service, as for :func:`download` (only used to download).

    Returns
    -------
    voicekit.HostedSession
        The turn table holds the recording's measurements (``u_on``, ``u_off``, ``a_on``,
        ``fto``, ...) beside the service's (``commit``, ``server_ttfa``,
        ``tool_duration``, ...); ``measured_from`` says which a row's came from.

    Raises
    ------
    LogFormatError
        If ``timeline.json`` is missing or unreadable, or the recording is not stereo.
    ConfigError, ServerError, voicekit.ConnectionError
        As :func:`download`, for an id that needs downloading.

    Examples
    --------
    >>> h = vk.load_hosted("hosted-sessions/sess_123")  # doctest: +SKIP
    >>> h = vk.load_hosted("sess_123", url=agent.url)  # downloads, then reads  # doctest: +SKIP
    >>> h.turns[["u_off", "commit", "fto", "server_ttfa", "measured_from"]]  # doctest: +SKIP
    """
    from voicekit.logformat.hosted import read_hosted

    path = Path(dir_or_session_id)
    if path.exists() or isinstance(dir_or_session_id, os.PathLike):
        return read_hosted(path)
    text = str(dir_or_session_id)
    if any(sep in text for sep in "/\\"):  # a path, not an id: say it is missing
        return read_hosted(path)
    session_id = _check_id(text)
    root = _check_dir(dir)
    if not _complete(root / session_id):
        api = _history_api(backend, url, api_key, timeout)
        if api is None:
            raise _unknown(
                session_id,
                "the embedded stand-in agent",
                f"it is not running (and {root / session_id} is not a downloaded session)",
            )
        _download(api, session_id, root, False, _check_wait(wait))
    return read_hosted(root / session_id)
