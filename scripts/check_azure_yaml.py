#!/usr/bin/env python3
"""Checks an app's azure.yaml against the rules of the Azure Developer CLI's schema that apply to it.

No package on PyPI or npm carries azd's schema, and this repository does not copy it, so the rules
are written out here, each with where it comes from:

- schemas/v1.0/azure.yaml.json in Azure/azure-dev: `name` is required and matches
  ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$; each service requires `host`; for `host: function` ("Function
  host" in the schema's allOf) exactly one of `project` and `image` is given and `env`, `k8s` and
  `apiVersion` are refused; a service's `hooks` take only pre/post + restore, build, package,
  publish, deploy; a hook takes only the keys of definitions/hook, and `shell` is sh or pwsh.
- cli/azd/pkg/project/framework_service_custom.go: `language: custom` needs `dist` ("'dist'
  required for custom language"); service_target_functionapp.go deploys a `dist` ending in .zip as
  it is.

It also checks what ties the file to the app: `dist` is the zip `cargo azfn package` writes
(dist/<Cargo package name>.zip), a prepackage hook runs `cargo azfn package`, and infra/ holds the
module azure.yaml names.

    python3 scripts/check_azure_yaml.py APP_DIR      (needs PyYAML)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TOP_KEYS = {"name", "resourceGroup", "metadata", "infra", "services", "resources", "pipeline", "hooks",
            "requiredVersions", "state", "platform", "workflows", "cloud"}
HOOK_KEYS = {f"{when}{step}" for when in ("pre", "post") for step in ("restore", "build", "package", "publish", "deploy")}
HOOK_FIELDS = {"shell", "run", "kind", "dir", "continueOnError", "interactive", "windows", "posix", "secrets", "config"}


def package_name(app: Path) -> str:
    in_package = False
    for line in (app / "Cargo.toml").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            in_package = line == "[package]"
        elif in_package and line.split("=")[0].strip() == "name":
            return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit(f"{app}/Cargo.toml has no [package] name")


def check(app: Path) -> list[str]:
    problems: list[str] = []
    doc = yaml.safe_load((app / "azure.yaml").read_text())
    if not isinstance(doc, dict):
        return ["azure.yaml is not a mapping"]
    if not isinstance(doc.get("name"), str) or not NAME.match(doc["name"]):
        problems.append(f"name {doc.get('name')!r} does not match {NAME.pattern}")
    for key in doc:
        if key not in TOP_KEYS:
            problems.append(f"unknown top-level key {key!r}")
    infra = doc.get("infra") or {}
    module = Path(infra.get("path", "infra")) / f"{infra.get('module', 'main')}.bicep"
    if not (app / module).is_file():
        problems.append(f"infra names {module}, which the app does not have")
    services = doc.get("services") or {}
    if not services:
        problems.append("no services")
    for name, svc in services.items():
        where = f"services.{name}"
        if "host" not in svc:
            problems.append(f"{where}: host is required")
        if svc.get("host") == "function":
            if ("project" in svc) == ("image" in svc):
                problems.append(f"{where}: a function service takes exactly one of project and image")
            for refused in ("env", "k8s", "apiVersion"):
                if refused in svc:
                    problems.append(f"{where}: {refused} is not allowed on a function service")
        if svc.get("language") == "custom" and not svc.get("dist"):
            problems.append(f"{where}: language custom needs dist")
        expected = f"dist/{package_name(app)}.zip"
        if svc.get("dist") != expected:
            problems.append(f"{where}: dist is {svc.get('dist')!r}; cargo azfn package writes {expected}")
        hooks = svc.get("hooks") or {}
        for hook, spec in hooks.items():
            if hook not in HOOK_KEYS:
                problems.append(f"{where}.hooks: {hook!r} is not a service hook")
            for one in spec if isinstance(spec, list) else [spec]:
                for field in one:
                    if field not in HOOK_FIELDS:
                        problems.append(f"{where}.hooks.{hook}: unknown field {field!r}")
                if one.get("shell", "sh") not in ("sh", "pwsh"):
                    problems.append(f"{where}.hooks.{hook}: shell {one.get('shell')!r} is not sh or pwsh")
        runs = [h.get("run", "") for h in ([hooks.get("prepackage")] if isinstance(hooks.get("prepackage"), dict)
                                            else hooks.get("prepackage") or [])]
        if not any("cargo azfn package" in r for r in runs):
            problems.append(f"{where}: no prepackage hook runs `cargo azfn package`")
    return problems


def main() -> int:
    app = Path(sys.argv[1])
    problems = check(app)
    for p in problems:
        print(f"  {p}")
    print(f"azure.yaml: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
