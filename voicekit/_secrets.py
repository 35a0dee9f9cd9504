"""Keeping credentials out of everything voicekit writes: logs, bundles, reprs, errors.

One private module used by every layer that logs or shows text that may hold a credential:
the log writer (:func:`scrub` on every line), the session and the stand-in agent
(:class:`MaskedLogger` as websockets' ``logger=``, :func:`mask` on handshake errors,
:func:`shown` in reprs) and the panel.

What counts as a credential: a value under one of :data:`SECRET_KEYS` (``api_key``,
``token``, ``resume_token``, ``authorization``, ...), a ``?token=`` / ``?api_key=`` /
``?key=`` query parameter, a ``Bearer`` token, an ``Authorization`` / ``X-Api-Key``
header, and any string the caller names as a secret.

Imports the standard library only, so that every layer (protocol included) may use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["SECRET_KEYS", "MaskedLogger", "mask", "scrub", "shown"]

SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "token",
        "resume_token",
        "authorization",
        "password",
        "secret",
        "access_token",
        "key",
    }
)
"""Field names (compared lower-case) whose values :func:`scrub` drops."""

HIDDEN = "***"
_TOKEN_RE = re.compile(r"([?&](?:token|api_key|key)=)[^&#\s\"']+", re.IGNORECASE)
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_HEADER_RE = re.compile(r"((?:Authorization|X-Api-Key):\s*)\S.*", re.IGNORECASE)


def scrub(value: Any) -> Any:
    """A copy of ``value`` with credential fields removed and tokens in text masked.

    Parameters
    ----------
    value : Any
        A JSON-like value: dicts lose every key in :data:`SECRET_KEYS` (at any depth),
        lists and tuples become lists of scrubbed items, strings have ``?token=`` values and
        ``Bearer`` tokens replaced by ``***``; anything else is returned as is.

    Returns
    -------
    Any
        The scrubbed copy.
    """
    if isinstance(value, dict):
        return {
            k: scrub(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.lower() in SECRET_KEYS)
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str) and ("=" in value or "earer" in value):
        return _BEARER_RE.sub(rf"\1{HIDDEN}", _TOKEN_RE.sub(rf"\1{HIDDEN}", value))
    return value


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``.

    Parameters
    ----------
    text : str
        Text that may hold a secret (an error message, a log record).
    secrets : iterable of str
        The credentials to hide; empty strings are skipped.

    Returns
    -------
    str
        The masked text.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    return text


def shown(secret: str | None) -> str:
    """How a credential appears in a repr or a status line: ``"none"`` or ``"set (hidden)"``."""
    return "none" if not secret else "set (hidden)"


class MaskedLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger (websockets' ``logger=``) that masks credentials in every record.

    At DEBUG websockets logs the request line (``?token=``) and every header
    (``Authorization``) of the handshake, on the client and on the server; someone debugging
    a connection turns that on in a notebook.

    Parameters
    ----------
    name : str
        Name of the underlying logger (``"websockets.client"``, ``"websockets.server"``).
    secrets : callable returning list of str
        Called for every record: the credentials to mask besides any ``Authorization``
        header value, ``?token=`` and ``Bearer`` token.
    """

    def __init__(self, name: str, secrets: Callable[[], list[str]]) -> None:
        super().__init__(logging.getLogger(name), {})
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level`` with every credential masked."""
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(map(str, (msg, *args)))
        text = _HEADER_RE.sub(rf"\1{HIDDEN}", mask(text, self._secrets()))
        self.logger.log(level, "%s", scrub(text), **kwargs)
