#!/usr/bin/env python3
"""Search oracle: compares a running Continuum server's search answers with answers computed here,
independently of the Rust code, from the same resources.

The expected answers come from another FHIRPath engine (`pip install fhirpathpy`) evaluating each R4
SearchParameter's expression over every stored resource, and from the matching rules of the FHIR R4 search
page written out again in Python. A difference is either a bug in Continuum or in this script: read both.

    python3 tools/search_oracle.py --base http://127.0.0.1:8080/fhir --token TOKEN [--types Patient,Observation]

Load data first, e.g. the official R4 examples (`npm pack hl7.fhir.r4.examples`, then `continuum import`).
Not part of CI: it needs fhirpathpy and a loaded server; it prints the differences and exits 1 if any.
"""

import argparse
import collections
import concurrent.futures
import datetime as dt
import json
import re
import sys
import unicodedata
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from pathlib import Path

from fhirpathpy import compile as fp_compile
from fhirpathpy.models import models

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "crates/continuum-fhir/generated/search-parameters.json"
SHARED = ROOT.parent / "shared/fhir-r4/search-parameters.json"


def get(base, token, url):
    if not url.startswith("http"):
        url = base + "/" + url
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "application/fhir+json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except Exception:
            return e.code, None


def search_ids(base, token, rtype, query):
    url = f"{rtype}?{query}&_count=1000&_elements=id"
    ids = set()
    while url:
        status, b = get(base, token, url)
        if status != 200:
            diag = ""
            if b and b.get("resourceType") == "OperationOutcome":
                diag = "; ".join(i.get("diagnostics", "") for i in b.get("issue", []))
            return status, diag
        for e in b.get("entry", []):
            if e.get("search", {}).get("mode", "match") == "match":
                ids.add(e["resource"]["id"])
        url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
    return 200, ids


def search_entries(base, token, rtype, query):
    """Every entry of the answer, matches and includes, as Type/id."""
    url = f"{rtype}?{query}&_count=1000"
    out = set()
    while url:
        status, b = get(base, token, url)
        if status != 200:
            return status, b
        for e in b.get("entry", []):
            r = e["resource"]
            if r["resourceType"] != "OperationOutcome":
                out.add(f"{r['resourceType']}/{r['id']}")
        url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
    return 200, out


def search_order(base, token, rtype, query):
    url = f"{rtype}?{query}&_count=1000&_elements=id"
    out = []
    while url:
        status, b = get(base, token, url)
        if status != 200:
            return status, b
        out += [e["resource"]["id"] for e in b.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
    return 200, out


def sort_key(kind, vs, descending):
    """The value a resource sorts by (R4 leaves it to the server; ours: the least value ascending, the greatest
    descending; a period by its start ascending and its end descending)."""
    keys = []
    for v in vs:
        if kind == "date":
            keys.append(v[1] if descending else v[0])
        elif kind == "string":
            keys.append(fold(v))
        elif kind == "token":
            keys.append(v[1])
        elif kind in ("number",):
            if v is not None:
                keys.append(v)
        elif kind == "quantity":
            if v[0] is not None:
                keys.append(v[0])
        elif kind == "uri":
            keys.append(v)
    if not keys:
        return None
    return max(keys) if descending else min(keys)


def all_resources(base, token, rtype):
    out = {}
    url = f"{rtype}?_count=1000"
    while url:
        status, b = get(base, token, url)
        if status != 200:
            return out
        for e in b.get("entry", []):
            r = e["resource"]
            out[r["id"]] = r
        url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
    return out


# ---- FHIRPath (fhirpathpy does not implement resolve(); rewrite it to a look at the reference text) ----
RESOLVE_IS = re.compile(r"resolve\(\)\s+is\s+([A-Za-z]+)")


AS_TYPE = re.compile(r"(\S+) as ([A-Za-z]+)")


def rewrite(expr):
    # the type a reference names in its path, relative or absolute (what the server's resolve() reads)
    expr = RESOLVE_IS.sub(lambda m: f"reference.matches('(^|/){m.group(1)}/[A-Za-z0-9.-]+(/_history/[^/]+)?$')", expr)
    # R4 expressions use `as` on collections; FHIRPath's ofType() is the collection-safe form
    return AS_TYPE.sub(lambda m: f"{m.group(1)}.ofType({m.group(2)})", expr)


def for_type(expr, rtype):
    """The parts of a union expression that apply to this type (as the server does)."""
    return expr


# ---- matching rules ----
def fold(s):
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    return " ".join(s.split())


def string_values(v):
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        out = []
        for k in ("family", "text", "city", "district", "state", "postalCode", "country"):
            if isinstance(v.get(k), str):
                out.append(v[k])
        for k in ("given", "prefix", "suffix", "line"):
            for x in v.get(k, []) or []:
                if isinstance(x, str):
                    out.append(x)
        return out
    return []


def token_values(v):
    """(system, code) pairs."""
    if isinstance(v, bool):
        return [(None, "true" if v else "false")]
    if isinstance(v, str):
        return [(None, v)]
    if isinstance(v, dict):
        if "coding" in v:
            return [(c.get("system"), c.get("code")) for c in v.get("coding", []) if c.get("code")]
        if isinstance(v.get("code"), str):
            return [(v.get("system"), v["code"])]
        if isinstance(v.get("value"), str):
            # Identifier (system is a URI) or ContactPoint (system is phone/email/...: not a token system)
            system = v.get("system")
            return [(system if system and ":" in system else None, v["value"])]
    return []


def ref_values(v):
    if isinstance(v, str):
        return [] if v.startswith("#") else [("canonical", v)]
    if isinstance(v, dict) and v.get("resourceType") and v.get("id"):
        return [f"{v['resourceType']}/{v['id']}"]
    if isinstance(v, dict) and isinstance(v.get("reference"), str):
        r = v["reference"]
        if r.startswith("#"):
            return []
        return [r]
    return []


def is_local(x):
    return isinstance(x, str) and "://" not in x and not x.startswith("urn:")


def ref_tail(r):
    m = re.search(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(/_history/[^/]+)?$", r)
    return f"{m.group(1)}/{m.group(2)}" if m else r


def precision_range(s):
    """[low, high) in UTC of a FHIR date/dateTime/instant string, or None."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?", s)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    y = int(y)
    if mo is None:
        return dt.datetime(y, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(y + 1, 1, 1, tzinfo=dt.timezone.utc)
    mo = int(mo)
    if d is None:
        lo = dt.datetime(y, mo, 1, tzinfo=dt.timezone.utc)
        hi = dt.datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=dt.timezone.utc)
        return lo, hi
    d = int(d)
    if hh is None:
        lo = dt.datetime(y, mo, d, tzinfo=dt.timezone.utc)
        return lo, lo + dt.timedelta(days=1)
    off = dt.timezone.utc
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        off = dt.timezone(sign * dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    lo = dt.datetime(y, mo, d, int(hh), int(mi), int(ss or 0), tzinfo=off)
    if frac:
        us = int((frac[1:] + "000000")[:6])
        lo = lo.replace(microsecond=us)
        step = dt.timedelta(microseconds=10 ** (6 - min(len(frac) - 1, 6)))
    elif ss is not None:
        step = dt.timedelta(seconds=1)
    else:
        step = dt.timedelta(minutes=1)
    lo = lo.astimezone(dt.timezone.utc)
    return lo, lo + step


NEG = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
POS = dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc)


def date_ranges(v):
    if isinstance(v, str):
        r = precision_range(v)
        return [r] if r else []
    if isinstance(v, dict):
        if "start" in v or "end" in v:
            s = precision_range(v["start"]) if "start" in v else None
            e = precision_range(v["end"]) if "end" in v else None
            return [((s[0] if s else NEG), (e[1] if e else POS))]
        if "event" in v or "repeat" in v:
            rs = [precision_range(x) for x in v.get("event", []) if isinstance(x, str)]
            rs = [r for r in rs if r]
            if rs:
                return [(min(r[0] for r in rs), max(r[1] for r in rs))]
    return []


def dec(x):
    try:
        return Decimal(str(x))
    except (InvalidOperation, ValueError):
        return None


def implicit_range(text):
    d = Decimal(text)
    exp = d.as_tuple().exponent
    half = Decimal(5) * Decimal(10) ** (exp - 1)
    return d - half, d + half


def uri_values(v):
    return [v] if isinstance(v, str) else []


def values_of(kind, vals):
    out = []
    for v in vals:
        if kind == "string":
            out += string_values(v)
        elif kind == "token":
            out += token_values(v)
        elif kind == "reference":
            out += ref_values(v)
        elif kind == "date":
            out += date_ranges(v)
        elif kind == "uri":
            out += uri_values(v)
        elif kind == "number":
            if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
                out.append(dec(v))
        elif kind == "quantity":
            if isinstance(v, dict) and "value" in v:
                out.append((dec(v["value"]), v.get("system"), v.get("code"), v.get("unit")))
    return out


def esc(s):
    """Search-value escaping (R4 3.1.1.4: `\\`, `,`, `$` and `|` are escaped with a backslash)."""
    for c in "\\,$|":
        s = s.replace(c, "\\" + c)
    return s


def day_queries(name, lo, hi):
    """eq on the UTC day of a value that lies within one day (dates and times with a zone)."""
    if hi == POS or hi - lo > dt.timedelta(days=1):
        return []
    day = lo.date()
    dlo = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    dhi = dlo + dt.timedelta(days=1)
    if hi > dhi:
        return []
    return [(f"{name}=eq{day.isoformat()}", lambda vs: any(a >= dlo and b <= dhi for a, b in vs))]


def queries_for(kind, name, value):
    """(query string, predicate over a resource's extracted values)."""

    def q(s, safe="/"):
        return urllib.parse.quote(esc(s), safe=safe)

    if kind == "string":
        out = [(f"{name}:exact={q(value)}", lambda vs, value=value: value in vs)]
        mid = fold(value)[1:4]
        if len(mid) == 3 and mid.strip() == mid:
            out.append((f"{name}:contains={q(mid)}", lambda vs, m=mid: any(m in fold(x) for x in vs)))
        pre = value[:3] if len(value) > 3 else value
        if fold(pre) and fold(pre) == fold(pre).strip():
            out.append((f"{name}={q(pre)}", lambda vs, p=fold(pre): any(fold(x).startswith(p) for x in vs)))
        return out
    if kind == "token":
        system, code = value
        out = [(f"{name}={q(code, safe='')}", lambda vs, c=code: any(x[1] == c for x in vs))]
        if system:
            out.append((f"{name}={q(system, safe='')}|{q(code, safe='')}", lambda vs, s=system, c=code: any(x == (s, c) for x in vs)))
            out.append((f"{name}={q(system, safe='')}|", lambda vs, s=system: any(x[0] == s for x in vs)))
        else:
            out.append((f"{name}=|{q(code, safe='')}", lambda vs, c=code: any(x == (None, c) for x in vs)))
        # :not: every resource without a matching value, those with no value at all included
        out.append((f"{name}:not={q(code, safe='')}", lambda vs, c=code: not any(x[1] == c for x in vs), "all"))
        return out
    if kind == "reference":
        if isinstance(value, tuple):
            url = value[1]
            bare = url.split("|")[0]
            return [(f"{name}={q(bare, safe='')}", lambda vs, u=bare: any(isinstance(x, tuple) and x[1].split("|")[0] == u for x in vs))]
        if "://" in value or value.startswith("urn:"):
            # another server's resource: matched as written (R4: an absolute URL matches that URL)
            return [(f"{name}={q(value, safe='')}", lambda vs, t=value: any(x == t for x in vs))]
        tail = ref_tail(value)
        if re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}", tail):
            ty, rid = tail.split("/")
            return [
                (f"{name}={q(tail, safe='/')}", lambda vs, t=tail: any(is_local(x) and ref_tail(x) == t for x in vs)),
                (f"{name}:{ty}={q(rid)}", lambda vs, t=tail: any(is_local(x) and ref_tail(x) == t for x in vs)),
            ]
        return [(f"{name}={q(value, safe='')}", lambda vs, t=value: any(x == t for x in vs))]
    if kind == "date":
        lo, hi = value
        if lo == NEG:
            return []
        year = lo.year
        qlo = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
        qhi = dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc)
        return [
            (f"{name}=eq{year}", lambda vs: any(a >= qlo and b <= qhi for a, b in vs)),
            # R4: ge = the range above the value overlaps, or the value's range contains the target
            (f"{name}=ge{year}", lambda vs: any(b > qhi or (a >= qlo and b <= qhi) for a, b in vs)),
            (f"{name}=lt{year}", lambda vs: any(a < qlo for a, b in vs)),
            (f"{name}=gt{year}", lambda vs: any(b > qhi for a, b in vs)),
            (f"{name}=le{year}", lambda vs: any(a < qlo or (a >= qlo and b <= qhi) for a, b in vs)),
            (f"{name}=sa{year}", lambda vs: any(a >= qhi for a, b in vs)),
            (f"{name}=eb{year}", lambda vs: any(b <= qlo for a, b in vs)),
            (f"{name}=ne{year}", lambda vs: any(not (a >= qlo and b <= qhi) for a, b in vs)),
        ] + day_queries(name, lo, hi)
    if kind == "uri":
        return [(f"{name}={q(value, safe='')}", lambda vs, u=value: u in vs)]
    if kind == "number":
        if value is None:
            return []
        text = format(value, "f")
        lo, hi = implicit_range(text)
        return [
            (f"{name}={text}", lambda vs, lo=lo, hi=hi: any(x is not None and lo <= x < hi for x in vs)),
            (f"{name}=gt{text}", lambda vs, v=value: any(x is not None and x > v for x in vs)),
            (f"{name}=le{text}", lambda vs, v=value: any(x is not None and x <= v for x in vs)),
            (f"{name}=lt{text}", lambda vs, v=value: any(x is not None and x < v for x in vs)),
            (f"{name}=ge{text}", lambda vs, v=value: any(x is not None and x >= v for x in vs)),
            # ne: some value outside the search value's implicit range
            (f"{name}=ne{text}", lambda vs, lo=lo, hi=hi: any(x is not None and not (lo <= x < hi) for x in vs)),
        ]
    if kind == "quantity":
        v, system, code, unit = value
        if v is None or not system or not code:
            return []
        text = format(v, "f")
        lo, hi = implicit_range(text)
        same = lambda x, s=system, c=code: x[0] is not None and x[1] == s and x[2] == c
        sc = f"{q(system, safe='')}|{q(code, safe='')}"
        return [
            (f"{name}={text}|{sc}", lambda vs, lo=lo, hi=hi: any(same(x) and lo <= x[0] < hi for x in vs)),
            (f"{name}=gt{text}|{sc}", lambda vs, v=v: any(same(x) and x[0] > v for x in vs)),
            (f"{name}=lt{text}|{sc}", lambda vs, v=v: any(same(x) and x[0] < v for x in vs)),
            (f"{name}=ge{text}|{sc}", lambda vs, v=v: any(same(x) and x[0] >= v for x in vs)),
            (f"{name}=le{text}|{sc}", lambda vs, v=v: any(same(x) and x[0] <= v for x in vs)),
            # a code without a system: any system with that code (R4 `number||code`)
            (f"{name}={text}||{q(code, safe='')}", lambda vs, lo=lo, hi=hi, c=code: any(x[0] is not None and x[2] == c and lo <= x[0] < hi for x in vs)),
        ]
    return []


def check_chains(args, sps, supported, types):
    """`A?P:T.Q=value`: the A resources whose P points at a T resource (by relative Type/id) matching Q."""
    stored = {}
    compiled = {}

    def resources(t):
        if t not in stored:
            stored[t] = all_resources(args.base, args.token, t)
        return stored[t]

    def extract(t, sp):
        expr = re.sub(r"\b(Resource|DomainResource)\.", t + ".", rewrite(sp["expression"]))
        if (t, expr) not in compiled:
            try:
                compiled[(t, expr)] = fp_compile(expr, models["r4"])
            except Exception:
                compiled[(t, expr)] = None
        fn = compiled[(t, expr)]
        out = {}
        for rid, r in resources(t).items():
            try:
                out[rid] = values_of(sp["type"], fn(r) or []) if fn else []
            except Exception:
                out[rid] = []
        return out

    by_type = collections.defaultdict(list)
    for sp in sps:
        if sp.get("expression") and sp.get("type") in ("token", "string", "reference"):
            for b in sp.get("base", []):
                by_type[b].append(sp)
    work = []
    for a in types:
        if not resources(a):
            continue
        for sp in by_type.get(a, []):
            if sp["type"] != "reference" or sp["code"] not in supported.get(a, {}):
                continue
            refs = extract(a, sp)
            tried = 0
            for rid, vs in sorted(refs.items()):
                if tried >= 2:
                    break
                for x in vs:
                    if not isinstance(x, str) or not re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}", x):
                        continue
                    t, tid = x.split("/")
                    if t not in supported or tid not in resources(t):
                        continue
                    for tsp in by_type.get(t, []):
                        if tsp["type"] not in ("token", "string") or tsp["code"] not in supported[t] or tsp["code"].startswith("_"):
                            continue
                        tvals = extract(t, tsp)
                        if not tvals.get(tid):
                            continue
                        for query, pred, *_ in queries_for(tsp["type"], tsp["code"], tvals[tid][0])[:1]:
                            hits = {i for i, v in tvals.items() if v and pred(v)}
                            exp = {r for r, rv in refs.items() if any(isinstance(y, str) and y.startswith(t + "/") and y.split("/")[1] in hits for y in rv)}
                            work.append((a, sp["code"], f"{sp['code']}:{t}.{query}", exp))
                        tried += 1
                        break
                    break
    # _include / _revinclude / _has on the same references
    for a in types:
        for sp in by_type.get(a, []):
            if sp["type"] != "reference" or sp["code"] not in supported.get(a, {}):
                continue
            refs = extract(a, sp)
            def local_target(y):
                y = re.sub(r"/_history/[^/]+$", "", y) if isinstance(y, str) else y
                if not (is_local(y) and re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}", y)):
                    return None
                t, i = y.split("/")
                return y if t in supported and i in resources(t) else None

            local = {rid: sorted({local_target(y) for y in vs} - {None}) for rid, vs in refs.items()}
            with_targets = [rid for rid, ts in sorted(local.items()) if ts][:2]
            for rid in with_targets:
                exp = {f"{a}/{rid}"} | set(local[rid])
                work.append((a, sp["code"], f"_id={rid}&_include={a}:{sp['code']}", ("all", exp)))
                t, tid = local[rid][0].split("/")
                exp = {f"{t}/{tid}"} | {f"{a}/{x}" for x, ts in local.items() if f"{t}/{tid}" in ts}
                work.append((t, sp["code"], f"_id={tid}&_revinclude={a}:{sp['code']}", ("all", exp)))
                # _has with the source's own _id: the targets it points at through this parameter
                exp = {y.split("/")[1] for y in local[rid] if y.startswith(t + "/")}
                work.append((t, sp["code"], f"_has:{a}:{sp['code']}:_id={rid}", exp))
    mismatches, errors = [], []
    for a, code, query, exp in work:
        if isinstance(exp, tuple):
            status, got = search_entries(args.base, args.token, a, query)
            exp = exp[1]
        else:
            status, got = search_ids(args.base, args.token, a, query)
        if status != 200:
            errors.append(f"{status} {a}?{query}: {got}")
        elif got != exp:
            mismatches.append((a, code, query, sorted(exp - got)[:5], sorted(got - exp)[:5]))
    print(f"chains, includes, _has: {len(work)} searches", file=sys.stderr)
    return len(work), mismatches, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8080/fhir")
    ap.add_argument("--token", required=True)
    ap.add_argument("--types", default="")
    ap.add_argument("--params", default="", help="only these parameter codes")
    ap.add_argument("--per-param", type=int, default=3, help="sample values per parameter")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--show", type=int, default=40)
    ap.add_argument("--chains", action="store_true", help="also check one-level chains (P:Type.Q=value)")
    args = ap.parse_args()

    bundle = json.loads((SHARED if SHARED.exists() else PARAMS).read_text())
    sps = [e["resource"] for e in bundle.get("entry", [])] if "entry" in bundle else bundle
    _, cap = get(args.base, args.token, "metadata")
    common = {p["name"]: p["type"] for p in cap["rest"][0].get("searchParam", [])}
    supported = {r["type"]: {**common, **{p["name"]: p["type"] for p in r.get("searchParam", [])}} for r in cap["rest"][0]["resource"]}
    types = [t for t in (args.types.split(",") if args.types else supported)]
    only = set(args.params.split(",")) if args.params else None

    compiled = {}
    problems = collections.Counter()
    mismatches = []
    checked = 0
    errors = []

    def run(item):
        rtype, code, query, expected = item
        status, got = search_ids(args.base, args.token, rtype, query)
        return rtype, code, query, expected, status, got

    for rtype in types:
        res = all_resources(args.base, args.token, rtype)
        if not res:
            continue
        work = []
        sorts = []
        for sp in sps:
            code = sp.get("code")
            if only and code not in only:
                continue
            kind = sp.get("type")
            if kind == "composite" or kind == "special" or not sp.get("expression"):
                continue
            bases = sp.get("base", [])
            if rtype not in bases and not ({"Resource", "DomainResource"} & set(bases)):
                continue
            if code not in supported.get(rtype, {}):
                problems[f"not in CapabilityStatement: {rtype}.{code}"] += 1
                continue
            expr = rewrite(sp["expression"])
            expr = re.sub(r"\b(Resource|DomainResource)\.", rtype + ".", expr)
            key = (rtype, expr)
            if key not in compiled:
                try:
                    compiled[key] = fp_compile(expr, models["r4"])
                except Exception as e:
                    problems[f"oracle cannot compile {code}: {e}"] += 1
                    compiled[key] = None
            fn = compiled[key]
            if fn is None:
                continue
            extracted = {}
            for rid, r in res.items():
                try:
                    vals = fn(r)
                except Exception as e:
                    problems[f"oracle cannot evaluate {rtype}.{code}: {str(e)[:60]}"] += 1
                    vals = []
                extracted[rid] = values_of(kind, vals or [])
            present = {rid for rid, vs in extracted.items() if vs}
            if code != "_lastUpdated":
                work.append((rtype, code, f"{code}:missing=false", present))
                work.append((rtype, code, f"{code}:missing=true", set(res) - present))
            if kind in ("date", "string", "number", "quantity", "uri") and present:
                for desc in (False, True):
                    keys = {rid: sort_key(kind, vs, desc) for rid, vs in extracted.items()}
                    sorts.append((rtype, code, f"_sort={'-' if desc else ''}{code}", keys, desc))
            samples = []
            for rid in sorted(present):
                for v in extracted[rid][:2]:
                    samples.append(v)
            seen = set()
            picked = 0
            for v in samples:
                if picked >= args.per_param:
                    break
                for query, pred, *scope in queries_for(kind, code, v):
                    if query in seen or query.startswith(("_id=|", "_id:not")):
                        continue
                    seen.add(query)
                    exp = {rid for rid, vs in extracted.items() if (vs or scope) and pred(vs)}
                    work.append((rtype, code, query, exp))
                picked += 1
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for rtype_, code, query, expected, status, got in pool.map(run, work):
                checked += 1
                if status != 200:
                    errors.append(f"{status} {rtype_}?{query}: {got}")
                    continue
                if got != expected:
                    mismatches.append((rtype_, code, query, sorted(expected - got)[:5], sorted(got - expected)[:5]))
        for rtype_, code, query, keys, desc in sorts:
            checked += 1
            status, got = search_order(args.base, args.token, rtype_, query)
            if status != 200:
                errors.append(f"{status} {rtype_}?{query}")
                continue
            if set(got) != set(keys):
                mismatches.append((rtype_, code, query, sorted(set(keys) - set(got))[:5], sorted(set(got) - set(keys))[:5]))
                continue
            seq = [keys[i] for i in got]
            present_part = [k for k in seq if k is not None]
            ok = seq[: len(present_part)] == present_part  # missing values last
            ok = ok and all((a >= b) if desc else (a <= b) for a, b in zip(present_part, present_part[1:]))
            if not ok:
                mismatches.append((rtype_, code, query, ["order:"] + [str(k) for k in seq[:6]], []))
        print(f"{rtype}: {len(res)} resources, {len(work)} searches", file=sys.stderr)

    if args.chains:
        c, m, e = check_chains(args, sps, supported, types)
        checked += c
        mismatches += m
        errors += e

    for p, n in sorted(problems.items()):
        print(f"note: {p} ({n})")
    for e in errors[: args.show]:
        print("error:", e)
    for rtype, code, query, missing, extra in mismatches[: args.show]:
        print(f"DIFF {rtype}?{query}\n   expected but not returned: {missing}\n   returned but not expected: {extra}")
    print(f"{checked} searches, {len(mismatches)} differences, {len(errors)} errors")
    return 1 if mismatches or errors else 0


if __name__ == "__main__":
    sys.exit(main())
