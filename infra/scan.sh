#!/usr/bin/env bash
# Scans infra/ with checkov (PyPI, pinned), fully offline, and fails on any parse error, any failed
# check, or a scan that found no resources. checkov itself exits 0 on parse errors, so its JSON
# report is read instead of its exit code. Suppressions live inline in the Bicep, each with its reason.
#   infra/scan.sh            (venv in target/checkov-venv, or $CHECKOV_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CHECKOV_VENV:-target/checkov-venv}
version=3.3.30
if [ ! -x "$venv/bin/checkov" ] || [ "$("$venv/bin/checkov" --version 2>/dev/null)" != "$version" ]; then
  echo "installing checkov $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "checkov==$version"
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" -d infra --framework bicep --skip-download --compact \
  --external-checks-dir infra/checks -o json >"$report" 2>/dev/null || true
python3 - "$report" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
problems, passed, skipped, resources = [], 0, 0, 0
for r in reports:
    s = r.get("summary", {})
    passed += s.get("passed", 0); skipped += s.get("skipped", 0); resources += s.get("resource_count", 0)
    results = r.get("results", {})
    errors = results.get("parsing_errors", []) or []
    for path in errors:
        problems.append(f"parse error: {path}")
    if s.get("parsing_errors", 0) and not errors:
        problems.append(f"{s['parsing_errors']} parse errors")
    for c in results.get("failed_checks", []):
        problems.append(f"failed {c['check_id']} on {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): {c['check_name']}")
    for c in results.get("skipped_checks", []):
        print(f"suppressed {c['check_id']} on {c['resource']}: {c.get('suppress_comment', '')}")
if resources == 0:
    problems.append("checkov scanned no resources: is infra/main.bicep there and parseable?")
print(f"checkov ({resources} resources): {skipped} suppressed inline")
print(f"checkov: {passed} passed, {len(problems)} failed")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
