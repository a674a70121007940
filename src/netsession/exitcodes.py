"""The exit statuses of the ``netsession`` command, one meaning each (documented in ``--help``, the man
page and the README; :data:`EXIT_STATUSES` is where those texts come from).

Commands that act on several servers at once (the fleet commands) exit :data:`PARTIAL` when some servers
answered and others failed, so a script can tell "all done", "nothing done" and "some done" apart.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
PARTIAL: Final = 3
INTERRUPTED: Final = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C

EXIT_STATUSES: Final = (
    (OK, "success"),
    (FAILED, "the operation failed: the server refused it, could not be reached, or the output could not "
     "be written"),
    (USAGE, "usage: a mistake on the command line or in its input (a bad option or value, no password)"),
    (PARTIAL, "partial success: a command acting on several servers succeeded on some, failed on others"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)
