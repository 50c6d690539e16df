# Fill an Autobahn spec template with the URL, the report directory and the
# AUTOBAHN_CASES / AUTOBAHN_EXCLUDE_CASES overrides (comma-separated patterns).
#
#   python3 scripts/autobahn_spec.py TEMPLATE OUT URL OUTDIR
import json, os, sys
template, out, url, outdir = sys.argv[1:5]
with open(template) as f:
    spec = json.load(f)
if "servers" in spec:          # fuzzingclient spec
    for server in spec["servers"]:
        server["url"] = url
else:                          # fuzzingserver spec
    spec["url"] = url
spec["outdir"] = outdir
def patterns(name):
    value = os.environ.get(name, "").strip()
    return [p.strip() for p in value.split(",") if p.strip()] if value else None
cases = patterns("AUTOBAHN_CASES")
if cases is not None:
    spec["cases"] = cases
exclude = patterns("AUTOBAHN_EXCLUDE_CASES")
if exclude is not None:
    spec["exclude-cases"] = exclude
with open(out, "w") as f:
    json.dump(spec, f, indent=2)
