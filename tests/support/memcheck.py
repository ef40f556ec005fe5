"""Sanitizer and valgrind hooks for the process launchers (tests/support/producer_api.py, tests/e2e/conftest.py).

  HOOKD_VALGRIND=1      prefix every bin/producer-api and bin/dispatcher with valgrind memcheck; one log per
                        process: $HOOKD_VALGRIND_DIR (default: the launcher's own directory)/vg.<name>.<pid>.log
  ASAN_OPTIONS, ...     (make test) a sanitizer report aborts the process; problems() finds it afterwards

    argv = memcheck.wrap([str(binary)], name="dispatcher1", logdir=workdir)
    timeout = memcheck.scaled(15)                    # x VALGRIND_SLOWDOWN under valgrind
    bad = memcheck.problems("dispatcher1", returncode, stderr_text, pid, logdir)   # [] when clean
"""

from __future__ import annotations

import glob
import os
import re
import signal
from typing import List, Optional

VALGRIND = os.environ.get("HOOKD_VALGRIND", "") not in ("", "0")
SLOWDOWN = float(os.environ.get("HOOKD_VALGRIND_SLOWDOWN", "8")) if VALGRIND else 1.0

VALGRIND_ARGS = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                 "--errors-for-leak-kinds=definite", "--error-exitcode=99", "--track-fds=no", "--num-callers=40"]

# Lines a sanitizer writes to stderr when it finds something (ASan, LSan, UBSan).
_SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined"
                        r"Behavior|Leak)Sanitizer")
# Error headers valgrind writes (checked in logs without an ERROR SUMMARY: the process was SIGKILLed).
_VG_ERROR = re.compile(r"^==\d+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised"
                       r"|Syscall param|Source and destination overlap|Argument '.*' of function|.* are definitely lost)",
                       re.M)


def scaled(seconds: float) -> float:
    """A start-up / shutdown timeout, multiplied under valgrind."""
    return seconds * SLOWDOWN


def log_dir(default: str) -> str:
    d = os.environ.get("HOOKD_VALGRIND_DIR") or default
    os.makedirs(d, exist_ok=True)
    return d


def wrap(argv: List[str], name: str, logdir: str) -> List[str]:
    """argv, prefixed with valgrind when HOOKD_VALGRIND=1."""
    if not VALGRIND:
        return list(argv)
    return VALGRIND_ARGS + [f"--log-file={os.path.join(log_dir(logdir), f'vg.{name}.%p.log')}"] + list(argv)


def valgrind_log_problems(path: str) -> Optional[str]:
    """The interesting part of one valgrind log, or None when it reports no error and no definite leak."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
    bad = (m is not None and int(m.group(1)) > 0) or (lost is not None and lost.group(1) != "0") \
        or (m is None and _VG_ERROR.search(text) is not None)
    return f"{path}:\n{text[-12000:]}" if bad else None


def problems(name: str, returncode: Optional[int], stderr_text: str, pid: Optional[int] = None,
             logdir: Optional[str] = None) -> List[str]:
    """Why this finished process fails the memory checks: sanitizer abort/report, valgrind errors or leaks."""
    out = []
    if returncode == -signal.SIGABRT:
        out.append(f"{name} died of SIGABRT (sanitizer abort?)")
    lines = [ln for ln in stderr_text.splitlines() if _SANITIZER.search(ln)]
    if lines:
        i = stderr_text.find(lines[0])
        out.append(f"{name}: sanitizer report in its stderr:\n{stderr_text[max(0, i - 200):i + 8000]}")
    if VALGRIND and pid is not None and logdir is not None:
        for path in glob.glob(os.path.join(log_dir(logdir), f"vg.{name}.{pid}.log")):
            p = valgrind_log_problems(path)
            if p:
                out.append(f"{name}: valgrind: {p}")
        if returncode == 99:
            out.append(f"{name} exited 99 (valgrind --error-exitcode)")
    return out
