"""Running the real `netsession` command as a subprocess, on pipes or on a terminal of its own (a pty that
is its controlling terminal, so getpass prompts there and Ctrl-D / Ctrl-C arrive as they do for a user)."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from typing import Any

NETSESSION = [sys.executable, "-m", "netsession.cli"]
TIMEOUT = 60.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any NETSESSION_* variable of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSESSION_")}
    env.update(extra or {})
    return env


def netsession(
    *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``netsession ARGS`` with ``stdin`` as its input (none: /dev/null); stdout and stderr captured
    unless ``popen`` says otherwise."""
    if "stdout" not in popen:
        popen["stdout"] = subprocess.PIPE
    return subprocess.run(
        [*NETSESSION, *args], input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, env=clean_env(env), **popen,
    )


def _make_controlling_terminal() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def on_terminal(
    args: Sequence[str], prompt: bytes, keys: bytes, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Run ``netsession ARGS`` on a pty, wait for ``prompt``, type ``keys``; (exit status, all it wrote)."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [*NETSESSION, *args], stdin=slave, stdout=slave, stderr=slave, env=clean_env(env),
        preexec_fn=_make_controlling_terminal,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while prompt not in output:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no prompt {prompt!r}; got {output!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before the prompt {prompt!r}; got {output!r}")
            output += chunk
        os.write(master, keys)
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"still running after the keys; got {output!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        status = process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return status, output.decode(errors="replace").replace("\r\n", "\n")
