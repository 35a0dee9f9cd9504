"""``python -m voicekit``: see :mod:`voicekit.cli`."""

from voicekit.cli import main

raise SystemExit(main())
