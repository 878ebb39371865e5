#!/usr/bin/env python3
"""Writes crates/continuum-web/tests/access_matrix.tsv: the expected decision of every
(user, resource type, target patient, interaction) case of the authorisation test, one row per case.

The rules below restate the default access policy (crates/continuum-core/policy/default.json and PRODUCT.md
P9) in plain terms, independently of the Rust code that enforces it; the test (tests/access.rs) runs every row
against a real server and lists every row whose outcome differs. Review a change to this file as a change of
policy.

Fixture (built by the test): organisations A and B; Dr A (physician at A), nurse B (at B); patients
  sponsor (adult, A), child8 (8 years, A), teen14 (14, A), adult19 (19, A), other (adult, B).
Every patient has a lab Observation, a Condition, a sensitive Condition (labelled PSY + R) and an Appointment.
The sponsor's account is a parent proxy of child8, teen14 and adult19.
"""
import itertools
import pathlib

TARGETS = ["sponsor", "child8", "teen14", "adult19", "other"]
ORG = {"sponsor": "A", "child8": "A", "teen14": "A", "adult19": "A", "other": "B"}
TYPES = ["Patient", "Observation", "Condition", "SensitiveCondition", "Appointment", "Practitioner"]
INTERACTIONS = ["read", "search", "create", "update"]

ALLOW = {"read": "200", "search": "1", "create": "201", "update": "200"}
HIDDEN = {"read": "404", "search": "0", "create": "403", "update": "404"}
FORBIDDEN = {i: "403" for i in INTERACTIONS}


def fhir_type(t):
    return "Condition" if t == "SensitiveCondition" else t


def staff(perms, reach):
    """perms: type -> letters of cruds; reach: function(target) -> bool (whose records)."""

    def decide(t, target, i):
        letters = perms.get(fhir_type(t), perms.get("*", ""))
        letter = {"read": "r", "search": "s", "create": "c", "update": "u"}[i]
        if letter not in letters:
            return FORBIDDEN[i]
        if t == "Practitioner":  # directory, not in any patient's record
            return ALLOW[i]
        return ALLOW[i] if reach(target) else HIDDEN[i]

    return decide


def patient(level, own, sees):
    """sees: target -> 'all' | 'not-sensitive' | 'nothing'."""
    premium = {"*": "rs", "Appointment": "rscu"}  # *.rs + Appointment.cu (+ Communication.c, QR.cu)
    basic = {"Patient": "rs", "Appointment": "rs"}
    perms = premium if level == "premium" else basic

    def decide(t, target, i):
        letters = perms.get(fhir_type(t), perms.get("*", ""))
        letter = {"read": "r", "search": "s", "create": "c", "update": "u"}[i]
        if letter not in letters:
            return FORBIDDEN[i]
        if t == "Practitioner":
            return ALLOW[i]
        view = "all" if target == own else sees.get(target, "nothing")
        if view == "nothing" or (view == "not-sensitive" and t == "SensitiveCondition"):
            return HIDDEN[i]
        return ALLOW[i]

    return decide


USERS = {
    "service": lambda t, target, i: ALLOW[i],
    "physician_a": staff({"*": "crus"}, lambda p: ORG[p] == "A"),
    "nurse_b": staff({"*": "crus"}, lambda p: ORG[p] == "B"),
    "pharmacist": staff(
        {"Patient": "rs", "Observation": "rs", "Condition": "rs", "Practitioner": "rs"},
        lambda p: True,
    ),
    "scheduler": staff(
        {"Patient": "rs", "Appointment": "crus", "Practitioner": "rs"}, lambda p: True
    ),
    # readiness coordinators see readiness status only: a lab result is not one
    "readiness": staff({"Patient": "rs"}, lambda p: True),
    "public_health": staff(
        {"Patient": "rs", "Observation": "rs", "Condition": "rs"}, lambda p: True
    ),
    "administrator": staff({"Practitioner": "crus"}, lambda p: True),
    "sponsor": patient(
        "premium",
        "sponsor",
        {"child8": "all", "teen14": "not-sensitive", "adult19": "nothing"},
    ),
    "teen": patient("premium", "teen14", {}),
    "adult_basic": patient("basic", "adult19", {}),
}


def readiness_observation_fix(user, t, i, decision):
    # The readiness scope is Observation.rs restricted to readiness observations: the type is allowed, the lab
    # result is simply not among what it reaches.
    if user == "readiness" and t == "Observation" and i in ("read", "search"):
        return HIDDEN[i]
    return decision


def main():
    rows = ["user\ttype\ttarget\tinteraction\texpected"]
    for user, decide in USERS.items():
        for t, target, i in itertools.product(TYPES, TARGETS, INTERACTIONS):
            if t == "Practitioner" and target != "sponsor":
                continue  # not about a patient: one row per interaction is enough
            d = readiness_observation_fix(user, t, i, decide(t, target, i))
            rows.append(f"{user}\t{t}\t{target if t != 'Practitioner' else '-'}\t{i}\t{d}")
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/continuum-web/tests/access_matrix.tsv"
    out.write_text("\n".join(rows) + "\n")
    print(f"{len(rows) - 1} cases -> {out}")


if __name__ == "__main__":
    main()
