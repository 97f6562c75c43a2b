#!/usr/bin/env python3
"""A strict reader of the Prometheus text exposition format 0.0.4, for test_metrics.sh.

prom_check.py FILE            exits 0 when FILE parses, else prints why and exits 1
prom_check.py FILE SERIES...  also prints the value of each series (exact text such as
                              'iothub_x_total{reason="a"}'), or MISSING

Checked: every line is a "# HELP name text", a "# TYPE name type" or a sample
'name{label="value",...} value'; HELP then TYPE come once per family, before its samples,
and a family's samples are contiguous; counters end in _total; label names and values are
well formed and no series repeats; histograms have increasing le bounds, cumulative
non-decreasing bucket counts, a +Inf bucket equal to _count, and a _sum.
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL_PAIR = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % LABEL)
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(lineno, msg):
    sys.exit("line %d: %s" % (lineno, msg))


def parse_labels(text, lineno):
    labels, pos = [], 0
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if m is None:
            fail(lineno, "bad label set {%s}" % text)
        labels.append((m.group(1), m.group(2)))
        pos = m.end()
        if m.group(3) == "," and pos == len(text):
            fail(lineno, "trailing comma in {%s}" % text)
    names = [k for k, _ in labels]
    if len(set(names)) != len(names):
        fail(lineno, "repeated label in {%s}" % text)
    return labels


def parse_value(v, lineno):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", v):
        fail(lineno, "bad value %r" % v)
    return float(v)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def check(path):
    helps, types, series, done = {}, {}, {}, set()
    current = None
    hist = {}  # (family, other labels) -> {"buckets": [(le, v)], "sum": x, "count": n}
    for lineno, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if m is None:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    fail(lineno, "malformed %r" % line)
                continue  # a comment
            kind, name, rest = m.groups()
            if name in done or name == current and kind == "HELP":
                fail(lineno, "%s of %s after its samples or repeated" % (kind, name))
            if kind == "HELP":
                if name in helps:
                    fail(lineno, "second HELP for %s" % name)
                helps[name] = rest
            else:
                if name in types:
                    fail(lineno, "second TYPE for %s" % name)
                if rest not in TYPES:
                    fail(lineno, "unknown type %r" % rest)
                if name not in helps:
                    fail(lineno, "TYPE of %s before its HELP" % name)
                if rest == "counter" and not name.endswith("_total"):
                    fail(lineno, "counter %s does not end in _total" % name)
                types[name] = rest
            continue
        m = SAMPLE.match(line)
        if m is None:
            fail(lineno, "not a sample: %r" % line)
        name, ltext, vtext = m.groups()
        labels = parse_labels(ltext or "", lineno)
        value = parse_value(vtext, lineno)
        fam = family_of(name, types)
        if fam not in types:
            fail(lineno, "sample of %s before its TYPE" % fam)
        if fam != current:
            if fam in done:
                fail(lineno, "samples of %s are not contiguous" % fam)
            if current is not None:
                done.add(current)
            current = fam
        key = name + ("{%s}" % ltext if ltext else "")
        if key in series:
            fail(lineno, "repeated series %s" % key)
        series[key] = value
        if types[fam] == "counter" and (value < 0 or math.isnan(value)):
            fail(lineno, "counter %s is %s" % (key, vtext))
        if types[fam] == "histogram":
            other = tuple((k, v) for k, v in labels if k != "le")
            h = hist.setdefault((fam, other), {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                le = dict(labels).get("le")
                if le is None:
                    fail(lineno, "bucket without le")
                h["buckets"].append((parse_value(le, lineno), value, lineno))
            elif name.endswith("_sum"):
                h["sum"] = value
            else:
                h["count"] = value
    for (fam, other), h in hist.items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            fail(0, "histogram %s%s has no +Inf bucket last" % (fam, other))
        for (le0, v0, _), (le1, v1, ln) in zip(b, b[1:]):
            if le1 <= le0:
                fail(ln, "%s: le bounds not increasing" % fam)
            if v1 < v0:
                fail(ln, "%s: buckets not cumulative" % fam)
        if h["count"] is None or h["sum"] is None:
            fail(0, "histogram %s%s lacks _sum or _count" % (fam, other))
        if h["count"] != b[-1][1]:
            fail(0, "histogram %s%s: +Inf bucket %s != _count %s"
                 % (fam, other, b[-1][1], h["count"]))
    return series


def main():
    series = check(sys.argv[1])
    for want in sys.argv[2:]:
        v = series.get(want)
        print("MISSING" if v is None else ("%d" % v if v == int(v) else "%g" % v))


if __name__ == "__main__":
    main()
