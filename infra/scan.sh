#!/usr/bin/env bash
# Scans infra/ offline with checkov (from PyPI, pinned) and azfn's own checks in infra/checks/,
# checks every resource's properties against the ARM type definitions (infra/check_types.py), and
# runs the template's own tests (infra/tests/: zone redundancy refused without ZRS, settings per
# plan, the blob-event route, diagnostic settings), all with checkov's Bicep parser.
#
#   infra/scan.sh [DIR]  venv in target/checkov-venv, or in $CHECKOV_VENV; DIR defaults to infra
#                        (another folder: an app's infra/ written by `cargo azfn init`, checked the
#                        same way but for this template's own tests)
#
# Fails on: any failed check, any parse error, a scan that saw none of the main resources, a
# suppression without a reason, a key or connection string in the templates, or a parameter in
# main.bicepparam that main.bicep does not declare. checkov itself exits 0 on parse errors, so its
# JSON report is read instead of its exit code. Suppressions are inline in the Bicep
# (`// checkov:skip=CKV_ID: reason` inside the resource).
set -euo pipefail
# DIR as the caller named it, before the script moves to the repository root.
dir_arg=${1:-}
if [ -n "$dir_arg" ]; then dir_arg=$(realpath "$dir_arg"); fi
cd "$(dirname "$0")/.."

version=3.3.30
venv=${CHECKOV_VENV:-target/checkov-venv}
dir=${dir_arg:-infra}
if [ ! -f "$dir/main.bicep" ]; then
  echo "infra/scan.sh: $dir/main.bicep not found" >&2
  exit 2
fi

if [ "$("$venv/bin/checkov" --version 2>/dev/null || true)" != "$version" ]; then
  echo "installing checkov $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$version"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# No keys: the templates must never read or build one.
if grep -rnE 'listKeys\(|listConnectionStrings|AccountKey=|SharedAccessKey=' "$dir" --include='*.bicep' --include='*.bicepparam'; then
  echo "$dir/: the lines above read or build a key or connection string; use a managed identity" >&2
  keys_found=1
else
  keys_found=0
fi

status=0
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" -d "$dir" --framework bicep --skip-download --compact \
  --external-checks-dir infra/checks -o json >"$work/report.json" 2>"$work/stderr" || status=$?

scan_status=0
python3 - "$work/report.json" "$work/stderr" "$status" "$keys_found" "$dir" <<'PY' || scan_status=$?
import json
import re
import sys
from pathlib import Path

report, stderr, status, keys_found = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
folder = Path(sys.argv[5])
problems = []

try:
    data = json.loads(report.read_text() or "null")
except json.JSONDecodeError as e:
    data = None
    problems.append(f"checkov wrote no JSON report ({e}); exit code {status}")
if data is None and not problems:
    problems.append(f"checkov wrote an empty report; exit code {status}")
if problems:
    print("\n".join(stderr.read_text().splitlines()[-20:]), file=sys.stderr)

reports = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
passed, failed, skipped, resources, scanned_types = [], [], [], 0, set()
for r in reports:
    summary = r.get("summary", {})
    resources += summary.get("resource_count", 0)
    results = r.get("results", {})
    errors = results.get("parsing_errors") or []
    problems += [f"parse error: {path}" for path in errors]
    if summary.get("parsing_errors") and not errors:
        problems.append(f"{summary['parsing_errors']} parse errors")
    passed += results.get("passed_checks", [])
    failed += results.get("failed_checks", [])
    skipped += results.get("skipped_checks", [])

for c in passed + failed + skipped:
    scanned_types.add(c["resource"].rsplit(".", 1)[0])
for c in failed:
    line = c.get("file_line_range", [0])[0]
    problems.append(f"failed {c['check_id']} on {c['resource']} ({c['file_path']}:{line}): {c['check_name']}")
for c in skipped:
    reason = (c.get("check_result") or {}).get("suppress_comment", "").strip()
    if reason == "No comment provided":  # checkov's text for a skip comment without a reason
        reason = ""
    print(f"suppressed {c['check_id']} on {c['resource']}: {reason or '(no reason)'}")
    if not reason:
        problems.append(f"{c['check_id']} on {c['resource']} is suppressed without a reason")

required = {"Microsoft.Web/sites", "Microsoft.Web/serverfarms", "Microsoft.Storage/storageAccounts"}
if resources == 0 or not required <= scanned_types:
    missing = ", ".join(sorted(required - scanned_types)) or "everything"
    problems.append(f"checkov did not scan {missing}: is {folder}/main.bicep there and parseable?")

if keys_found:
    problems.append(f"a key or connection string in {folder}/ (see above)")

# Parameter files are not parsed by checkov: check that they set only declared parameters (and that
# main.bicepparam points at main.bicep).
bicep = (folder / "main.bicep").read_text()
declared = set(re.findall(r"^param\s+(\w+)", bicep, re.M))
if (folder / "main.bicepparam").is_file():
    bicepparam = (folder / "main.bicepparam").read_text()
    if not re.search(r"^using\s+'\./main\.bicep'", bicepparam, re.M):
        problems.append(f"{folder}/main.bicepparam does not start with using './main.bicep'")
    for name in re.findall(r"^param\s+(\w+)", bicepparam, re.M):
        if name not in declared:
            problems.append(f"{folder}/main.bicepparam sets `{name}`, which main.bicep does not declare")
if (folder / "main.parameters.json").is_file():
    for name in json.loads((folder / "main.parameters.json").read_text()).get("parameters", {}):
        if name not in declared:
            problems.append(f"{folder}/main.parameters.json sets `{name}`, which main.bicep does not declare")

print(f"checkov {reports[0].get('summary', {}).get('checkov_version', '?') if reports else '?'}: "
      f"{resources} resources, {len(passed)} checks passed, {len(skipped)} suppressed inline, {len(problems)} problems")
for p in problems:
    print("  " + p)
print(f"checkov: {len(passed)} passed, {len(problems)} failed, {len(skipped)} skipped")
sys.exit(1 if problems else 0)
PY

echo "== ARM type definitions (infra/check_types.py)"
types_status=0
"$venv/bin/python" infra/check_types.py "$dir/main.bicep" || types_status=$?

tests_status=0
if [ "$(realpath "$dir")" = "$(realpath infra)" ]; then
  echo "== template tests (infra/tests/)"
  "$venv/bin/python" -m unittest discover -s infra/tests || tests_status=$?
fi

if [ "$scan_status" -ne 0 ] || [ "$types_status" -ne 0 ] || [ "$tests_status" -ne 0 ]; then
  echo "infra/scan.sh: failed (checkov $scan_status, types $types_status, tests $tests_status)" >&2
  exit 1
fi
