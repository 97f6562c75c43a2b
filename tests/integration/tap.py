"""Reporting of the Python integration tests: one "ok - name" or "not ok - name" line per
check (the lines deploy/dev.sh counts), the detail of a failure on stderr, and the count of
failures for the exit status."""

import sys

failed = 0


def check(cond, name, detail=""):
    """Reports one check; returns whether it passed."""
    global failed
    if cond:
        print("ok - " + name, flush=True)
    else:
        failed += 1
        print("not ok - " + name, flush=True)
        if detail:
            print("  " + str(detail)[:2000], file=sys.stderr, flush=True)
    return bool(cond)
