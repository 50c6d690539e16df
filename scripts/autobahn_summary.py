#!/usr/bin/env python3
"""Summarise an Autobahn testsuite (wstest) report directory.

Usage: autobahn_summary.py [--no-unimplemented] REPORT_DIR LABEL

REPORT_DIR holds the index.json that wstest writes (plus one JSON file per
case); LABEL (e.g. "server" or "client") names the run in the output.

Prints, per section (the first number of the case id), the counts of each
`behavior` and `behaviorClose` value, then every case whose behavior or
behaviorClose is not OK, with the result texts from its per-case report.
The output has no timestamps or durations and is sorted, so a saved copy
diffs cleanly.

With --no-unimplemented, UNIMPLEMENTED fails in sections 12 and 13 too (the
run with permessage-deflate on, where compression is what is tested).

Exit status: 0 if every case passes; 1 if any case is FAILED, NON-STRICT,
UNIMPLEMENTED (allowed only in sections 12 and 13), of an unknown behavior,
or has a behaviorClose other than OK or INFORMATIONAL; 2 if the report is
missing, unreadable or has no cases.
"""

import json
import os
import re
import sys

OK_BEHAVIORS = {"OK", "INFORMATIONAL"}
OK_CLOSE_BEHAVIORS = {"OK", "INFORMATIONAL"}
UNIMPLEMENTED_ALLOWED_SECTIONS = {"12", "13"}
MAX_TEXT = 400


def case_key(case_id):
    """Sort key for case ids like "6.4.10": numeric per component."""
    return tuple(int(p) if p.isdigit() else 0 for p in case_id.split(".")), case_id


def section_key(section):
    return (int(section) if section.isdigit() else 10**6, section)


def case_problem(section, behavior, close):
    """The reason a case fails, or None if it passes."""
    if behavior == "UNIMPLEMENTED":
        if section not in UNIMPLEMENTED_ALLOWED_SECTIONS:
            return "UNIMPLEMENTED outside sections 12-13"
    elif behavior not in OK_BEHAVIORS:
        return "behavior " + behavior
    if close not in OK_CLOSE_BEHAVIORS:
        return "behaviorClose " + close
    return None


def short_text(value):
    text = re.sub(r"\s+", " ", str(value)).strip()
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "..."
    return text


def case_texts(report_dir, info):
    """(result, resultClose) from the per-case report, if it can be read."""
    name = info.get("reportfile")
    if not name:
        return None
    try:
        with open(os.path.join(report_dir, os.path.basename(name)), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get("result", ""), data.get("resultClose", "")


def format_counts(counts):
    return " ".join("%s=%d" % (k, counts[k]) for k in sorted(counts))


def summarise_agent(label, agent, cases, report_dir, out):
    """Print one agent's summary; return the number of failing cases."""
    sections = {}
    for case_id, info in cases.items():
        section = case_id.split(".")[0]
        entry = sections.setdefault(section, {"n": 0, "b": {}, "c": {}})
        entry["n"] += 1
        b = str(info.get("behavior", "MISSING"))
        c = str(info.get("behaviorClose", "MISSING"))
        entry["b"][b] = entry["b"].get(b, 0) + 1
        entry["c"][c] = entry["c"].get(c, 0) + 1

    out.append("== %s: agent %s, %d cases ==" % (label, agent, len(cases)))
    rows = [("section", "cases", "behavior", "behaviorClose")]
    for section in sorted(sections, key=section_key):
        e = sections[section]
        rows.append((section, str(e["n"]), format_counts(e["b"]), format_counts(e["c"])))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        out.append(
            "%s  %s  %s  %s"
            % (r[0].rjust(widths[0]), r[1].rjust(widths[1]), r[2].ljust(widths[2]), r[3])
        )

    failing = 0
    not_ok = 0
    listed = []
    for case_id in sorted(cases, key=case_key):
        info = cases[case_id]
        b = str(info.get("behavior", "MISSING"))
        c = str(info.get("behaviorClose", "MISSING"))
        if b == "OK" and c == "OK":
            continue
        not_ok += 1
        problem = case_problem(case_id.split(".")[0], b, c)
        if problem:
            failing += 1
        mark = "FAIL: " + problem if problem else "allowed"
        listed.append("  %s  behavior=%s  behaviorClose=%s  [%s]" % (case_id, b, c, mark))
        texts = case_texts(report_dir, info)
        if texts is not None:
            listed.append("      result: " + short_text(texts[0]))
            listed.append("      resultClose: " + short_text(texts[1]))
    out.append("not OK (%d):" % not_ok)
    out.extend(listed if listed else ["  none"])
    return failing


def main(argv):
    global UNIMPLEMENTED_ALLOWED_SECTIONS
    if len(argv) > 1 and argv[1] == "--no-unimplemented":
        UNIMPLEMENTED_ALLOWED_SECTIONS = set()
        argv = argv[:1] + argv[2:]
    if len(argv) != 3:
        sys.stderr.write("usage: autobahn_summary.py [--no-unimplemented] REPORT_DIR LABEL\n")
        return 2
    report_dir, label = argv[1], argv[2]
    out = []
    index_path = os.path.join(report_dir, "index.json")
    status = 0
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        out.append("== %s: no report ==" % label)
        out.append("ERROR: cannot read %s index.json: %s" % (label, e.__class__.__name__))
        index = None
        status = 2

    if index is not None:
        if not isinstance(index, dict):
            index = {}
        total = 0
        failing = 0
        for agent in sorted(index):
            cases = index[agent]
            if not isinstance(cases, dict) or not cases:
                continue
            total += len(cases)
            failing += summarise_agent(label, agent, cases, report_dir, out)
        if total == 0:
            out.append("== %s: no cases ==" % label)
            out.append("ERROR: the %s report has no cases" % label)
            status = 2
        elif failing:
            out.append("%s verdict: FAIL (%d of %d cases failing)" % (label, failing, total))
            status = 1
        else:
            out.append("%s verdict: PASS (%d cases)" % (label, total))
    out.append("")

    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    sys.stdout.write("\n".join(out) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
