#!/usr/bin/env python3
"""Checks every resource in infra/main.bicep against the ARM type definitions of its API version.

No Bicep compiler runs here (its releases come from GitHub, which CI cannot reach), so a misspelt
property, a property the API version does not have, a read-only property, a missing required one or
a value of the wrong type would only show at `az deployment`. This does the compiler's type check
for the template's own constructs, against the definitions Bicep uses (Azure/bicep-types-az, kept in
infra/types/arm-types.json by infra/types/extract.py):

- each property name of a resource body, at any depth, exists in its type (same case);
- read-only properties are not set; required ones are, where the object is written out;
- literals fit their type: string, int (with its bounds), bool, the known strings of an enum
  (of an extensible one too: Bicep warns there, and it is almost always a typo),
  arrays item by item, objects recursively (discriminated objects by their discriminator);
- names are followed: a parameter's declared type and `@allowed` values, a variable's expression,
  both branches of a condition (null means "left out", always fine), `concat()` of arrays,
  `obj[key]` and `obj.prop` of an object variable (every value);
- what is known only at deployment (`storage.id`, function results) is taken as fitting.

    python3 infra/check_types.py [FILE]    (default infra/main.bicep; in the checkov venv: infra/scan.sh runs it)

Exits 1 and prints each problem with the resource and property path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bicep_model as m  # noqa: E402

TYPES = Path(__file__).resolve().parent / "types" / "arm-types.json"

REQUIRED, READ_ONLY = 1, 2
# Keys of a resource body that are Bicep's own, not the resource's.
BICEP_KEYS = {"parent", "scope", "dependsOn"}
STRING_FUNCTIONS = {"guid", "subscription_resource_id", "resource_id", "unique_string", "format", "to_lower",
                    "to_upper", "string", "resource_group", "subscription"}


class Checker:
    def __init__(self, template: m.Template, data: dict) -> None:
        self.template = template
        self.types: list[dict] = data["types"]
        self.resources: dict[str, dict] = data["resources"]
        self.problems: list[str] = []
        self._following: set[str] = set()

    def type_of(self, ref: dict) -> dict:
        return self.types[int(ref["$ref"][2:])]

    def check_all(self) -> int:
        checked = 0
        for res in self.template.resources.values():
            key = f"{res.type}@{res.api_version}"
            rtype = self.resources.get(key)
            if rtype is None:
                self.problems.append(
                    f"{res.symbol}: no type definition for {key} in {TYPES.name}; run infra/types/extract.py")
                continue
            body_type = self.type_of(self.type_of(rtype)["body"])
            body = m.Obj({k: v for k, v in res.body.pairs.items() if k not in BICEP_KEYS}, res.body.line)
            self.value(body, body_type, f"{res.symbol} ({key})", top=True)
            checked += 1
        return checked

    # -- values ------------------------------------------------------------------------------------

    def value(self, node: Any, t: dict, where: str, top: bool = False) -> None:
        kind = t.get("$type")
        if node is None or kind == "AnyType":
            return
        if isinstance(node, m.Lit) and node.value is None:
            return  # null: the property is left out
        if isinstance(node, m.Cond):
            self.value(node.if_true, t, where)
            self.value(node.if_false, t, where)
            return
        if isinstance(node, m.Ref):
            return self.reference(node, t, where)
        if isinstance(node, m.Index):
            # obj[key] of an object variable: every value could be chosen.
            base = self.follow(node.base)
            if isinstance(base, m.Obj):
                for k, v in base.pairs.items():
                    self.value(v, t, f"{where} (as [{k!r}])")
            return
        if isinstance(node, m.Prop):
            base = self.follow(node.base)
            for part in node.path:
                if not isinstance(base, m.Obj) or part not in base.pairs:
                    return  # a resource's or function's property: known at deployment only
                base = self.follow(base.pairs[part])
            return self.value(base, t, where)
        if isinstance(node, m.Call):
            return self.call(node, t, where)
        if isinstance(node, (m.Op, m.Unknown)):
            return
        if kind == "UnionType":
            return self.union(node, t, where)
        if kind == "StringType":
            if not isinstance(node, m.Lit) or not isinstance(node.value, str):
                return self.wrong(node, "a string", where)
            if not node.interpolated:
                v = node.value
                if "minLength" in t and len(v) < t["minLength"]:
                    self.problems.append(f"{where}: {v!r} is shorter than {t['minLength']}")
                if "maxLength" in t and len(v) > t["maxLength"]:
                    self.problems.append(f"{where}: {v!r} is longer than {t['maxLength']}")
            return
        if kind == "StringLiteralType":
            if not isinstance(node, m.Lit) or not isinstance(node.value, str):
                return self.wrong(node, f"the string {t['value']!r}", where)
            if not node.interpolated and node.value != t["value"]:
                self.problems.append(f"{where}: {node.value!r} is not {t['value']!r}")
            return
        if kind == "IntegerType":
            if not isinstance(node, m.Lit) or isinstance(node.value, bool) or not isinstance(node.value, int):
                return self.wrong(node, "an integer", where)
            if "minValue" in t and node.value < t["minValue"]:
                self.problems.append(f"{where}: {node.value} is below the minimum {t['minValue']}")
            if "maxValue" in t and node.value > t["maxValue"]:
                self.problems.append(f"{where}: {node.value} is above the maximum {t['maxValue']}")
            return
        if kind == "BooleanType":
            if not isinstance(node, m.Lit) or not isinstance(node.value, bool):
                self.wrong(node, "true or false", where)
            return
        if kind == "ArrayType":
            if not isinstance(node, m.Arr):
                return self.wrong(node, "an array", where)
            for i, item in enumerate(node.items):
                self.value(item, self.type_of(t["itemType"]), f"{where}[{i}]")
            return
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            if not isinstance(node, m.Obj):
                return self.wrong(node, "an object", where)
            return self.object(node, t, where, top)
        self.problems.append(f"{where}: the type {kind} is not known to infra/check_types.py")

    def union(self, node: Any, t: dict, where: str) -> None:
        elements = [self.type_of(e) for e in t["elements"]]
        known = [e["value"] for e in elements if e.get("$type") == "StringLiteralType"]
        if known and isinstance(node, m.Lit) and isinstance(node.value, str) and not node.interpolated \
                and node.value not in known:
            # An "extensible" enum also takes any string, but a value outside the known ones is
            # almost always a typo (Bicep warns, ARM may refuse it).
            self.problems.append(f"{where}: {node.value!r} is not one of the known values {known}")
            return
        for element in elements:
            trial = Checker(self.template, {"types": self.types, "resources": self.resources})
            trial.value(node, element, where)
            if not trial.problems:
                return
        allowed = [e["value"] for e in elements if e.get("$type") == "StringLiteralType"]
        shown = node.value if isinstance(node, m.Lit) else type(node).__name__
        hint = f"; allowed: {', '.join(map(repr, allowed))}" if allowed else ""
        self.problems.append(f"{where}: {shown!r} fits none of the types allowed here{hint}")

    def object(self, node: m.Obj, t: dict, where: str, top: bool) -> None:
        if t["$type"] == "DiscriminatedObjectType":
            key = t["discriminator"]
            chosen = self.follow(node.pairs.get(key))
            props = dict(t.get("baseProperties", {}))
            if isinstance(chosen, m.Lit) and chosen.value in t["elements"]:
                props.update(self.type_of(t["elements"][chosen.value]).get("properties", {}))
            elif isinstance(chosen, m.Lit):
                self.problems.append(f"{where}.{key}: {chosen.value!r} is not one of {sorted(t['elements'])}")
                return
            else:
                return  # the discriminator is computed: nothing certain to check
            t = {"$type": "ObjectType", "properties": props}
        props: dict[str, dict] = t.get("properties", {})
        extra = t.get("additionalProperties")
        for name, value in node.pairs.items():
            spec = props.get(name)
            if spec is None:
                if extra is not None:
                    self.value(value, self.type_of(extra), f"{where}.{name}")
                    continue
                if "${" in name:
                    continue
                near = [p for p in props if p.lower() == name.lower()]
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                self.problems.append(f"{where}: unknown property {name!r}{hint}")
                continue
            if spec.get("flags", 0) & READ_ONLY and not spec.get("flags", 0) & REQUIRED:
                self.problems.append(f"{where}.{name}: read-only, cannot be set")
                continue
            self.value(value, self.type_of(spec["type"]), f"{where}.{name}")
        for name, spec in props.items():
            flags = spec.get("flags", 0)
            if flags & REQUIRED and not flags & READ_ONLY and name not in node.pairs:
                if top and name == "name":
                    continue
                self.problems.append(f"{where}: required property {name!r} is missing")

    def call(self, node: m.Call, t: dict, where: str) -> None:
        if node.name == "concat" and t.get("$type") == "ArrayType":
            for arg in node.args:
                self.value(arg, t, where)
            return
        if node.name in STRING_FUNCTIONS and t.get("$type") in ("IntegerType", "BooleanType", "ArrayType"):
            self.problems.append(f"{where}: {node.name}() gives a string, expected {t['$type']}")

    def reference(self, node: m.Ref, t: dict, where: str) -> None:
        name = node.name
        if name in self.template.params:
            p = self.template.params[name]
            expected = {"StringType": "string", "StringLiteralType": "string", "IntegerType": "int",
                        "BooleanType": "bool", "ArrayType": "array", "ObjectType": "object"}.get(t.get("$type"))
            if t.get("$type") == "UnionType":
                literals = [self.type_of(e) for e in t["elements"]]
                values = {e["value"] for e in literals if e.get("$type") == "StringLiteralType"}
                open_string = any(e.get("$type") == "StringType" for e in literals)
                if values and not open_string:
                    if p.allowed is None:
                        self.problems.append(
                            f"{where}: parameter {name} may be any string, the property takes only {sorted(values)}")
                    else:
                        for v in p.allowed:
                            if v not in values:
                                self.problems.append(f"{where}: parameter {name} allows {v!r}, not one of {sorted(values)}")
                return
            if expected and p.type != expected:
                self.problems.append(f"{where}: parameter {name} is {p.type}, the property takes {expected}")
            if p.type == "int" and t.get("$type") == "IntegerType":
                if "minValue" in t and (p.min_value is None or p.min_value < t["minValue"]):
                    self.problems.append(f"{where}: parameter {name} may be below the minimum {t['minValue']}")
                if "maxValue" in t and (p.max_value is None or p.max_value > t["maxValue"]):
                    self.problems.append(f"{where}: parameter {name} may be above the maximum {t['maxValue']}")
            if p.allowed and t.get("$type") == "IntegerType":
                for v in p.allowed:
                    self.value(m.Lit(v), t, where)
            return
        if name in self.template.variables:
            if name in self._following:
                return
            self._following.add(name)
            try:
                self.value(self.template.variables[name], t, where)
            finally:
                self._following.discard(name)
        # A loop variable or a resource symbol: known at deployment only.

    def follow(self, node: Any) -> Any:
        seen = set()
        while isinstance(node, m.Ref) and node.name in self.template.variables and node.name not in seen:
            seen.add(node.name)
            node = self.template.variables[node.name]
        return node

    def wrong(self, node: Any, expected: str, where: str) -> None:
        shown = repr(node.value) if isinstance(node, m.Lit) else type(node).__name__.lower()
        self.problems.append(f"{where}: {shown} is not {expected}")


def check(text: str | None = None) -> tuple[int, list[str], dict]:
    """Checks main.bicep (or `text`): (resources checked, problems, the type data's source)."""
    data = json.loads(TYPES.read_text())
    checker = Checker(m.load(text), data)
    checked = checker.check_all()
    return checked, checker.problems, data["source"]


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else m.MAIN
    checked, problems, source = check(path.read_text())
    print(f"ARM types: {checked} resources of {path} checked against Azure/bicep-types-az "
          f"{source['commit'][:12]}, {len(problems)} problems")
    for p in problems:
        print("  " + p)
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
