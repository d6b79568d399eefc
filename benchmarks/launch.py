"""Start one command and report its wall time, CPU time, peak RSS and exit code: the parent of every run.

A process's peak RSS counts the memory its parent had when it forked, so a command started by
the harness (which may hold a moto server or a freshly generated stream) would inherit that
figure. Started from this process, run with ``python -S`` and importing almost nothing, it
inherits a few MB at most. Usage: ``python -S launch.py REPORT COMMAND [ARG...]``.
"""

import os
import sys
import time


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    with open(report, "w") as out:
        cpu = usage.ru_utime + usage.ru_stime
        out.write(f"{elapsed} {cpu} {usage.ru_maxrss * 1024} {os.waitstatus_to_exitcode(status)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
