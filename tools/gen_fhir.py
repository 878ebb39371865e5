#!/usr/bin/env python3
"""Generate Continuum's FHIR R4 registry from the official definitions.

Reads ../shared/fhir-r4 (the hl7.fhir.r4.core 4.0.1 package and search-parameters.json) and writes compact
JSON files into crates/continuum-fhir/generated/, which the crate embeds with include_str!.

Why data files and not generated Rust: the registry is ~150 resource types and thousands of elements; as
Rust source it would dominate compile times, while parsing the JSON once at start-up takes milliseconds.

Usage:
    python3 tools/gen_fhir.py            # (re)write the generated files
    python3 tools/gen_fhir.py --check    # fail if the committed files differ from a fresh generation
"""
import argparse
import io
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "crates", "continuum-fhir", "generated")
DEFAULT_SHARED = os.path.join(os.path.dirname(ROOT), "shared", "fhir-r4")

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


def load_package(shared):
    defs = {}
    with tarfile.open(os.path.join(shared, "hl7.fhir.r4.core-4.0.1.tgz"), "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if not member.isfile() or not name.endswith(".json"):
                continue
            if not (name.startswith("StructureDefinition-") or name.startswith("CompartmentDefinition-")):
                continue
            data = json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))
            defs[name] = data
    return defs


def type_code(t):
    code = t["code"]
    if code in SYSTEM_TYPES:
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext["valueUrl"]
        return SYSTEM_TYPES[code]
    return code


def structures(defs):
    """Resources and data types that are specialisations (not profiles), keyed by type name."""
    out = {}
    primitives = {}
    for sd in defs.values():
        if sd.get("resourceType") != "StructureDefinition":
            continue
        if sd.get("derivation") != "specialization" or sd["kind"] == "logical":
            continue
        name = sd["type"]
        elements = {}
        for el in sd["snapshot"]["element"]:
            path = el["path"]
            if path == name:
                continue
            entry = {"min": el["min"], "max": el["max"]}
            if el.get("isSummary"):
                entry["summary"] = True
            if "contentReference" in el:
                entry["ref"] = el["contentReference"].lstrip("#")
            else:
                entry["types"] = sorted({type_code(t) for t in el.get("type", [])})
            elements[path[len(name) + 1:]] = entry
        if sd["kind"] == "primitive-type":
            regex = None
            for el in sd["snapshot"]["element"]:
                if el["path"] == name + ".value":
                    for t in el.get("type", []):
                        for ext in t.get("extension", []):
                            if ext.get("url") == REGEX_EXT:
                                regex = ext["valueString"]
            primitives[name] = regex
        out[name] = {
            "kind": sd["kind"],
            "abstract": sd.get("abstract", False),
            "base": (sd.get("baseDefinition") or "").rsplit("/", 1)[-1] or None,
            "elements": elements,
        }
    return out, primitives


def search_parameters(shared):
    with open(os.path.join(shared, "search-parameters.json"), encoding="utf-8") as f:
        bundle = json.load(f)
    params = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        params.append({
            "url": sp["url"],
            "code": sp["code"],
            "base": sp["base"],
            "type": sp["type"],
            "expression": sp.get("expression"),
            "target": sp.get("target", []),
            "modifier": sp.get("modifier", []),
            "comparator": sp.get("comparator", []),
            "component": [
                {"definition": c["definition"], "expression": c["expression"]} for c in sp.get("component", [])
            ],
        })
    params.sort(key=lambda p: p["url"])
    return params


def compartments(defs):
    out = {}
    for name, cd in defs.items():
        if cd.get("resourceType") != "CompartmentDefinition":
            continue
        out[cd["code"]] = {r["code"]: r.get("param", []) for r in cd["resource"] if r.get("param")}
    return out


def render(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    defs = load_package(args.shared)
    types, primitives = structures(defs)
    files = {
        "structures.json": render({"types": types, "primitives": primitives}),
        "search-parameters.json": render(params := search_parameters(args.shared)),
        "compartments.json": render(compartments(defs)),
    }
    with open(os.path.join(args.shared, "version.info"), encoding="utf-8") as f:
        files["SOURCE.txt"] = (
            "Generated by tools/gen_fhir.py from the FHIR R4 core package hl7.fhir.r4.core 4.0.1 "
            "(CC0-1.0 plus HL7's terms for FHIR). Do not edit by hand.\n" + f.read()
        )
    if args.check:
        bad = []
        for name, text in files.items():
            path = os.path.join(OUT, name)
            if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                bad.append(name)
        if bad:
            print("generated FHIR registry is stale: " + ", ".join(bad) + " (run python3 tools/gen_fhir.py)")
            return 1
        print(f"generated FHIR registry up to date ({len(types)} structures, {len(params)} search parameters)")
        return 0
    os.makedirs(OUT, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            f.write(text)
    print(f"wrote {len(files)} files to {OUT}: {len(types)} structures, {len(params)} search parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
