//! The conformance suite: behaviour every [`ResourceStore`] backend must show, run by each adapter's tests
//! through [`conformance_tests!`](crate::conformance_tests) against a real, empty database.
//!
//! Expected values are written from the port's contract, not read off an implementation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use crate::search::{
    Comparator, Filter, IndexTable, Predicate, SearchQuery, SortBy, SortKey, StringMode,
    TokenSystem,
};
use crate::{Expect, HistoryQuery, Method, ResourceStore, StoreError, StoredResource, WriteTx};

/// Generates one `#[test]` per conformance case. `$make` builds a fresh fixture that derefs to a store.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            create_then_read, create_twice_is_refused, update_makes_new_version, if_match_guards_updates,
            delete_is_versioned_and_idempotent, failed_transaction_leaves_nothing, transaction_sees_own_writes,
            history_pages_newest_first, history_since_and_at, search_by_id_and_type,
            search_by_reference_and_compartment, search_by_token, search_by_last_updated,
            search_pages_with_cursor_and_total, typed_reference_pages_in_key_order, chained_pages_walk_and_fall_back, chained_pages_past_the_walk, date_windows_find_rows_of_every_width, index_follows_updates_and_deletes, token_counts_follow_updates_and_deletes, token_counts_hold_under_concurrent_writers, guard_prevents_duplicate_conditional_creates,
            concurrent_if_match_updates_have_one_winner, bodies_round_trip_byte_exact,
            search_sorts_with_keyset_paging, long_values_are_indexed_by_prefix,
            reindex_walks_live_resources_in_key_order, settings_round_trip, analyze_keeps_answers);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::conformance::$name(&*fixture);
            }
        )*
    };
}

fn put(
    store: &dyn ResourceStore,
    resource: Value,
    expect: Expect,
) -> Result<crate::Written, StoreError> {
    let mut out = None;
    store.write(&mut |tx: &mut dyn WriteTx| {
        let mut r = resource.clone();
        out = Some(tx.put(&mut r, expect)?);
        Ok(())
    })?;
    Ok(out.expect("write ran"))
}

fn create(store: &dyn ResourceStore, resource: Value) -> crate::Written {
    put(store, resource, Expect::Absent).expect("create")
}

fn delete(store: &dyn ResourceStore, ty: &str, id: &str) -> Option<i64> {
    let mut out = None;
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            out = tx.delete(ty, id, Expect::Any)?;
            Ok(())
        })
        .expect("delete");
    out
}

fn body(r: &StoredResource) -> Value {
    serde_json::from_slice(&r.body).expect("stored body is JSON")
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": ["Test"]}],
           "identifier": [{"system": "urn:example:dodid", "value": format!("ID-{id}")}]})
}

fn observation(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": "2024-05-01T10:00:00Z",
           "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

/// `status=final`: the status of [`observation`].
fn status_final() -> Predicate {
    Predicate::Token {
        param: "status".into(),
        system: TokenSystem::Any,
        code: "final".into(),
        negate: false,
    }
}

/// `code=http://loinc.org|8867-4`: the code of [`observation`].
fn heart_rate_code() -> Predicate {
    Predicate::Token {
        param: "code".into(),
        system: TokenSystem::Is("http://loinc.org".into()),
        code: "8867-4".into(),
        negate: false,
    }
}

fn ids(page: &crate::SearchPage) -> Vec<String> {
    page.matches.iter().map(|m| m.id.clone()).collect()
}

/// The ids of every page of `query`, following the next cursors.
fn walk_pages(store: &dyn ResourceStore, mut query: SearchQuery) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let page = store.search(&query).unwrap();
        seen.extend(ids(&page));
        match page.next {
            Some(n) => query.after = Some(n),
            None => break seen,
        }
    }
}

fn q(ty: &str, filters: Vec<Predicate>) -> SearchQuery {
    SearchQuery {
        resource_type: Some(ty.into()),
        filters: filters.into_iter().map(Filter::one).collect(),
        count: 100,
        ..Default::default()
    }
}

pub fn create_then_read(store: &dyn ResourceStore) {
    let w = create(store, patient("p1", "Alpha"));
    assert_eq!(w.version, 1);
    assert!(w.created);
    let got = store.read("Patient", "p1").unwrap().expect("exists");
    assert_eq!(got.version, 1);
    assert!(!got.deleted);
    assert_eq!(got.method, Method::Create);
    let b = body(&got);
    assert_eq!(b["meta"]["versionId"], "1");
    assert_eq!(b["name"][0]["family"], "Alpha");
    assert!(b["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got.body, w.body);
    assert!(store.read("Patient", "nope").unwrap().is_none());
    assert!(
        store.read("Observation", "p1").unwrap().is_none(),
        "ids are per type"
    );
}

pub fn create_twice_is_refused(store: &dyn ResourceStore) {
    create(store, patient("p1", "Alpha"));
    let err = put(store, patient("p1", "Beta"), Expect::Absent).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_, _)), "{err:?}");
    assert_eq!(
        body(&store.read("Patient", "p1").unwrap().unwrap())["name"][0]["family"],
        "Alpha"
    );
}

pub fn update_makes_new_version(store: &dyn ResourceStore) {
    create(store, patient("p1", "Alpha"));
    let w = put(store, patient("p1", "Beta"), Expect::Any).unwrap();
    assert_eq!(w.version, 2);
    assert!(!w.created);
    let cur = store.read("Patient", "p1").unwrap().unwrap();
    assert_eq!(cur.version, 2);
    assert_eq!(cur.method, Method::Update);
    assert_eq!(body(&cur)["name"][0]["family"], "Beta");
    let v1 = store.vread("Patient", "p1", 1).unwrap().unwrap();
    assert_eq!(body(&v1)["name"][0]["family"], "Alpha");
    assert_eq!(body(&v1)["meta"]["versionId"], "1");
    assert!(store.vread("Patient", "p1", 3).unwrap().is_none());
    // create-on-update with a client id
    let w = put(store, patient("p2", "Gamma"), Expect::Any).unwrap();
    assert!(w.created);
    assert_eq!(w.version, 1);
}

pub fn if_match_guards_updates(store: &dyn ResourceStore) {
    create(store, patient("p1", "Alpha"));
    put(store, patient("p1", "Beta"), Expect::Version(1)).unwrap();
    let err = put(store, patient("p1", "Gamma"), Expect::Version(1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                current: Some(2)
            }
        ),
        "{err:?}"
    );
    let err = put(store, patient("zz", "Gamma"), Expect::Version(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { current: None, .. }),
        "{err:?}"
    );
    assert_eq!(store.read("Patient", "p1").unwrap().unwrap().version, 2);
}

pub fn delete_is_versioned_and_idempotent(store: &dyn ResourceStore) {
    create(store, patient("p1", "Alpha"));
    assert_eq!(delete(store, "Patient", "p1"), Some(2));
    let cur = store.read("Patient", "p1").unwrap().unwrap();
    assert!(cur.deleted);
    assert_eq!(cur.version, 2);
    assert_eq!(cur.method, Method::Delete);
    assert!(cur.body.is_empty());
    assert_eq!(
        delete(store, "Patient", "p1"),
        None,
        "deleting again changes nothing"
    );
    assert_eq!(delete(store, "Patient", "never"), None);
    // the old version stays readable, and the resource can be brought back by an update
    assert!(store.vread("Patient", "p1", 1).unwrap().is_some());
    let w = put(store, patient("p1", "Back"), Expect::Any).unwrap();
    assert_eq!(w.version, 3);
    assert!(w.created);
    // and a create with the id of a deleted resource is allowed too
    delete(store, "Patient", "p1");
    let w = put(store, patient("p1", "Again"), Expect::Absent).unwrap();
    assert_eq!(w.version, 5);
}

pub fn failed_transaction_leaves_nothing(store: &dyn ResourceStore) {
    create(store, patient("keep", "Keep"));
    let res = store.write(&mut |tx: &mut dyn WriteTx| {
        tx.put(&mut patient("p1", "Alpha"), Expect::Absent)?;
        tx.put(&mut patient("keep", "Changed"), Expect::Any)?;
        tx.delete("Patient", "keep", Expect::Any)?;
        Err(StoreError::Aborted)
    });
    assert!(matches!(res, Err(StoreError::Aborted)));
    assert!(store.read("Patient", "p1").unwrap().is_none());
    let keep = store.read("Patient", "keep").unwrap().unwrap();
    assert_eq!(keep.version, 1);
    assert_eq!(body(&keep)["name"][0]["family"], "Keep");
    let h = store
        .history(&HistoryQuery {
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(h.entries.len(), 1);
    let found = store
        .search(&q("Patient", vec![Predicate::Id("p1".into())]))
        .unwrap();
    assert!(found.matches.is_empty());
}

pub fn transaction_sees_own_writes(store: &dyn ResourceStore) {
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(&mut patient("p1", "Alpha"), Expect::Absent)?;
            let r = tx.read("Patient", "p1")?.expect("own write visible");
            assert_eq!(r.version, 1);
            let page = tx.search(&q("Patient", vec![Predicate::Id("p1".into())]))?;
            assert_eq!(page.matches.len(), 1);
            tx.put(&mut patient("p1", "Beta"), Expect::Version(1))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.read("Patient", "p1").unwrap().unwrap().version, 2);
}

pub fn history_pages_newest_first(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    put(store, patient("p1", "B"), Expect::Any).unwrap();
    create(store, observation("o1", "p1"));
    delete(store, "Patient", "p1");
    put(store, patient("p1", "C"), Expect::Any).unwrap();

    let inst = store
        .history(&HistoryQuery {
            resource_type: Some("Patient".into()),
            id: Some("p1".into()),
            count: 10,
            total: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(inst.total, Some(4));
    let versions: Vec<i64> = inst.entries.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![4, 3, 2, 1]);
    assert!(inst.entries[1].deleted);
    assert_eq!(inst.entries[1].method, Method::Delete);
    assert!(inst.next.is_none());

    let ty = store
        .history(&HistoryQuery {
            resource_type: Some("Observation".into()),
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ty.entries.len(), 1);

    // system level, two per page
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .history(&HistoryQuery {
                count: 2,
                before,
                ..Default::default()
            })
            .unwrap();
        assert!(page.entries.len() <= 2);
        seen.extend(
            page.entries
                .iter()
                .map(|e| format!("{}/{}/{}", e.resource_type, e.id, e.version)),
        );
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            "Patient/p1/4",
            "Patient/p1/3",
            "Observation/o1/1",
            "Patient/p1/2",
            "Patient/p1/1"
        ]
    );
}

pub fn history_since_and_at(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    let t_mid = store.read("Patient", "p1").unwrap().unwrap().last_updated;
    std::thread::sleep(std::time::Duration::from_millis(5));
    put(store, patient("p1", "B"), Expect::Any).unwrap();
    let since = store
        .history(&HistoryQuery {
            since: Some(t_mid + time::Duration::microseconds(1)),
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        since.entries.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![2]
    );
    let at = store
        .history(&HistoryQuery {
            at: Some(t_mid),
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        at.entries.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1]
    );
}

pub fn search_by_id_and_type(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    create(store, patient("p2", "B"));
    create(store, observation("p1", "p1"));
    let page = store
        .search(&q("Patient", vec![Predicate::Id("p1".into())]))
        .unwrap();
    assert_eq!(ids(&page), vec!["p1"]);
    assert_eq!(page.matches[0].resource_type, "Patient");
    let all = store.search(&q("Patient", vec![])).unwrap();
    assert_eq!(ids(&all), vec!["p1", "p2"]);
    let system = store
        .search(&SearchQuery {
            filters: vec![Filter::one(Predicate::Id("p1".into()))],
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(system.matches.len(), 2);
    let typed = store
        .search(&SearchQuery {
            types: vec!["Observation".into()],
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(typed.matches.len(), 1);
    // OR inside one filter
    let or = store
        .search(&SearchQuery {
            resource_type: Some("Patient".into()),
            filters: vec![Filter {
                any_of: vec![Predicate::Id("p1".into()), Predicate::Id("p2".into())],
            }],
            count: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(or.matches.len(), 2);
}

pub fn search_by_reference_and_compartment(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    create(store, patient("p2", "B"));
    create(store, observation("o1", "p1"));
    create(store, observation("o2", "p2"));
    create(store, observation("o3", "p1"));
    let by_subject = store
        .search(&q(
            "Observation",
            vec![Predicate::Reference {
                param: "subject".into(),
                target_type: Some("Patient".into()),
                target_id: "p1".into(),
            }],
        ))
        .unwrap();
    assert_eq!(ids(&by_subject), vec!["o1", "o3"]);
    let by_patient = store
        .search(&q(
            "Observation",
            vec![Predicate::Reference {
                param: "patient".into(),
                target_type: None,
                target_id: "p2".into(),
            }],
        ))
        .unwrap();
    assert_eq!(ids(&by_patient), vec!["o2"]);
    let comp = store
        .search(&q(
            "Observation",
            vec![Predicate::Compartment {
                target_type: "Patient".into(),
                target_id: "p1".into(),
                params: vec!["subject".into(), "performer".into()],
            }],
        ))
        .unwrap();
    assert_eq!(ids(&comp), vec!["o1", "o3"]);
}

pub fn search_by_token(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    create(store, patient("p2", "B"));
    let hit = store
        .search(&q(
            "Patient",
            vec![Predicate::Token {
                param: "identifier".into(),
                system: TokenSystem::Is("urn:example:dodid".into()),
                code: "ID-p2".into(),
                negate: false,
            }],
        ))
        .unwrap();
    assert_eq!(ids(&hit), vec!["p2"]);
    let any = store
        .search(&q(
            "Patient",
            vec![Predicate::Token {
                param: "identifier".into(),
                system: TokenSystem::Any,
                code: "ID-p1".into(),
                negate: false,
            }],
        ))
        .unwrap();
    assert_eq!(ids(&any), vec!["p1"]);
    let wrong_sys = store
        .search(&q(
            "Patient",
            vec![Predicate::Token {
                param: "identifier".into(),
                system: TokenSystem::Is("urn:other".into()),
                code: "ID-p1".into(),
                negate: false,
            }],
        ))
        .unwrap();
    assert!(wrong_sys.matches.is_empty());
    let code = store.search(&q("Observation", vec![])).unwrap();
    assert!(code.matches.is_empty());
}

pub fn search_by_last_updated(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    let t1 = crate::to_micros(store.read("Patient", "p1").unwrap().unwrap().last_updated);
    std::thread::sleep(std::time::Duration::from_millis(5));
    create(store, patient("p2", "B"));
    let after = store
        .search(&q(
            "Patient",
            vec![Predicate::LastUpdated {
                cmp: Comparator::Gt,
                low: t1,
                high: t1,
            }],
        ))
        .unwrap();
    assert_eq!(ids(&after), vec!["p2"]);
    let upto = store
        .search(&q(
            "Patient",
            vec![Predicate::LastUpdated {
                cmp: Comparator::Le,
                low: t1,
                high: t1,
            }],
        ))
        .unwrap();
    assert_eq!(ids(&upto), vec!["p1"]);
}

/// Several conditions on a single-valued date (`Encounter.date`) are read as one window of rows per width
/// class (`idx_date_span`): rows of every width — a visit, a week, months, years, decades, open at either end —
/// are found, with and without an anchoring reference, on one page or several. Expected answers are worked
/// out by hand from the R4 prefix rules.
pub fn date_windows_find_rows_of_every_width(store: &dyn ResourceStore) {
    let periods: &[(&str, Option<&str>, Option<&str>)] = &[
        (
            "visit",
            Some("2024-03-10T09:00:00Z"),
            Some("2024-03-10T09:30:00Z"),
        ),
        ("week", Some("2024-03-05"), Some("2024-03-15")),
        ("months", Some("2023-11-01"), Some("2024-06-30")),
        ("years", Some("2020-01-01"), Some("2027-01-01")),
        ("decades", Some("1990-01-01"), Some("2030-01-01")),
        ("open", Some("2023-01-01"), None),
        ("openstart", None, Some("2024-03-20")),
        (
            "before",
            Some("2024-02-01T10:00:00Z"),
            Some("2024-02-01T11:00:00Z"),
        ),
        (
            "after",
            Some("2024-04-01T00:00:00Z"),
            Some("2024-04-01T01:00:00Z"),
        ),
        (
            "edge",
            Some("2024-02-29T23:00:00Z"),
            Some("2024-03-02T01:00:00Z"),
        ),
        ("late", Some("2024-03-31T12:00:00Z"), Some("2024-05-10")),
        ("none", None, None),
    ];
    for (id, start, end) in periods {
        let mut period = serde_json::Map::new();
        if let Some(s) = start {
            period.insert("start".into(), json!(s));
        }
        if let Some(e) = end {
            period.insert("end".into(), json!(e));
        }
        let mut e = json!({"resourceType": "Encounter", "id": id, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "serviceProvider": {"reference": "Organization/clinic"}});
        if !period.is_empty() {
            e["period"] = Value::Object(period);
        }
        create(store, e);
    }
    let date = |cmp: Comparator, day: &str| {
        let (low, high) = continuum_fhir::datetime::date_range(day).expect("a date");
        Predicate::Date {
            param: "date".into(),
            cmp,
            low,
            high,
        }
    };
    let cases: Vec<(Vec<Predicate>, Vec<&str>)> = vec![
        (
            vec![
                date(Comparator::Ge, "2024-03-01"),
                date(Comparator::Lt, "2024-04-01"),
            ],
            vec![
                "visit",
                "week",
                "months",
                "years",
                "decades",
                "open",
                "openstart",
                "edge",
                "late",
            ],
        ),
        (vec![date(Comparator::Eq, "2024-03")], vec!["visit", "week"]),
        (
            vec![
                date(Comparator::Sa, "2024-02-29"),
                date(Comparator::Eb, "2024-04-01"),
            ],
            vec!["visit", "week"],
        ),
        (
            vec![
                date(Comparator::Gt, "2024-03-31"),
                date(Comparator::Le, "2024-03-15"),
            ],
            vec!["months", "years", "decades", "open"],
        ),
        (
            vec![
                date(Comparator::Ge, "2024-03-01"),
                date(Comparator::Lt, "2024-04-01"),
                date(Comparator::Ne, "2024-03-10"),
            ],
            vec![
                "week",
                "months",
                "years",
                "decades",
                "open",
                "openstart",
                "edge",
                "late",
            ],
        ),
    ];
    for (filters, want) in cases {
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        let clinic = Predicate::Reference {
            param: "service-provider".into(),
            target_type: Some("Organization".into()),
            target_id: "clinic".into(),
        };
        let alone = q("Encounter", filters.clone());
        let mut anchored = q("Encounter", [vec![clinic], filters.clone()].concat());
        for query in [alone, anchored.clone()] {
            let mut got = ids(&store.search(&query).unwrap());
            got.sort();
            assert_eq!(got, want, "{filters:?}");
        }
        anchored.count = 2;
        let mut paged = walk_pages(store, anchored);
        paged.sort();
        assert_eq!(paged, want, "paged, {filters:?}");
    }
}

pub fn search_pages_with_cursor_and_total(store: &dyn ResourceStore) {
    for i in 0..7 {
        create(store, patient(&format!("p{i}"), "Same"));
    }
    let mut query = q("Patient", vec![]);
    query.count = 3;
    query.total = true;
    let mut seen = Vec::new();
    loop {
        let page = store.search(&query).unwrap();
        if query.total {
            assert_eq!(page.total, Some(7));
        } else {
            assert_eq!(page.total, None);
        }
        seen.extend(ids(&page));
        match page.next {
            Some(n) => query.after = Some(n),
            None => break,
        }
        // a resource created while paging must not shift the pages already served
        if seen.len() == 3 {
            create(store, patient("late", "Late"));
            query.total = false;
        }
    }
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4", "p5", "p6", "late"]);
}

/// A page chosen by one typed reference (a clinic's encounters; PostgreSQL reads it in key order from the
/// reference index): every match once, in key order, across pages both ways, with other filters applied.
pub fn typed_reference_pages_in_key_order(store: &dyn ResourceStore) {
    for i in 0..10 {
        let mut o = observation(&format!("o{i}"), if i % 2 == 0 { "pa" } else { "pb" });
        if i == 4 {
            o["status"] = json!("cancelled");
        }
        create(store, o);
    }
    // the same id under another type, and the same target twice in one repeating parameter
    let mut g = observation("og", "pa");
    g["subject"] = json!({"reference": "Group/pa"});
    create(store, g);
    let mut twice = observation("ot", "pb");
    twice["performer"] =
        json!([{"reference": "Patient/pa"}, {"reference": "Patient/pa/_history/1"}]);
    create(store, twice);
    let by = |param: &str| Predicate::Reference {
        param: param.into(),
        target_type: Some("Patient".into()),
        target_id: "pa".into(),
    };
    let walk = |query: SearchQuery| walk_pages(store, query);
    let mut query = q("Observation", vec![by("subject")]);
    query.count = 2;
    assert_eq!(walk(query.clone()), ["o0", "o2", "o4", "o6", "o8"]);
    query.filters.push(Filter::one(status_final()));
    assert_eq!(walk(query.clone()), ["o0", "o2", "o6", "o8"]);
    // backwards from the end of the first page of four (o6): nearest first
    let mut four = q("Observation", vec![by("subject")]);
    four.count = 4;
    let after_o6 = store.search(&four).unwrap().next;
    let mut back = q("Observation", vec![by("subject")]);
    back.count = 2;
    back.backward = true;
    back.after = after_o6;
    assert_eq!(ids(&store.search(&back).unwrap()), ["o4", "o2"]);
    assert_eq!(walk(q("Observation", vec![by("performer")])), ["ot"]);
    // a chain drives the page the same way: the observations of the patients named Alpha
    create(store, patient("pa", "Alpha"));
    create(store, patient("pb", "Beta"));
    let mut chain = q("Observation", vec![alpha_patients("subject")]);
    chain.count = 2;
    // (og points at Group/pa, not at the patient)
    assert_eq!(walk(chain), ["o0", "o2", "o4", "o6", "o8"]);
}

/// The chain `param:Patient.family=alpha`.
fn alpha_patients(param: &str) -> Predicate {
    Predicate::Chain {
        param: param.into(),
        targets: vec![(
            "Patient".into(),
            vec![Filter::one(Predicate::String {
                param: "family".into(),
                value: "alpha".into(),
                mode: StringMode::Start,
            })],
        )],
    }
}

/// A chained search pages through matches that are dense in some stretches of the key order and sparse or
/// absent in others (both backends first walk a window of the type in key order and fall back to the full
/// query when the window does not fill the page): every page holds the next matches, none is skipped or repeated,
/// deleted resources never show.
pub fn chained_pages_walk_and_fall_back(store: &dyn ResourceStore) {
    create(store, patient("pa", "Alpha"));
    create(store, patient("pb", "Beta"));
    let alpha = |i: usize| (i < 100 && i.is_multiple_of(10)) || (i >= 1300 && i.is_multiple_of(3));
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for i in 0..1500 {
                let mut o = observation(&format!("o{i:04}"), if alpha(i) { "pa" } else { "pb" });
                if i.is_multiple_of(7) {
                    // the same patient twice in the chained parameter
                    o["performer"] = json!([{"reference": "Patient/pa"}]);
                }
                tx.put(&mut o, Expect::Absent)?;
            }
            Ok(())
        })
        .unwrap();
    for gone in ["o0030", "o1302"] {
        delete(store, "Observation", gone);
    }
    let want: Vec<String> = (0..1500)
        .filter(|i| alpha(*i))
        .map(|i| format!("o{i:04}"))
        .filter(|id| id != "o0030" && id != "o1302")
        .collect();
    for count in [5, 1000] {
        let mut query = q("Observation", vec![alpha_patients("subject")]);
        query.count = count;
        query.total = true;
        let first = store.search(&query).unwrap();
        assert_eq!(first.total, Some(want.len() as u64));
        assert_eq!(walk_pages(store, query), want, "pages of {count}");
    }
    // with a code checked on each candidate too: the patient's observations that are final
    let mut query = q("Observation", vec![alpha_patients("subject")]);
    query.filters.push(Filter::one(status_final()));
    query.count = 7;
    assert_eq!(walk_pages(store, query), want);
    // OR of two chains: the subject or a performer is Alpha
    let mut either = q("Observation", vec![]);
    either.filters.push(Filter {
        any_of: vec![alpha_patients("subject"), alpha_patients("performer")],
    });
    either.count = 50;
    let want_either: Vec<String> = (0..1500)
        .filter(|i| alpha(*i) || i.is_multiple_of(7))
        .map(|i| format!("o{i:04}"))
        .filter(|id| id != "o0030" && id != "o1302")
        .collect();
    assert_eq!(walk_pages(store, either), want_either);
}

/// A chained search whose matches all lie beyond the walk's window: the first references to the targets
/// fill the page, or come short and the full query answers (a resource that refers to two targets under one
/// parameter); with another filter the full query answers. Pages are right whichever answered.
pub fn chained_pages_past_the_walk(store: &dyn ResourceStore) {
    for (id, family) in [("pa", "Alpha"), ("pa2", "Alphaville"), ("pb", "Beta")] {
        create(store, patient(id, family));
    }
    // 700 of Beta first, so a walk of the first 600 observations finds nothing
    let subject = |i: usize| match i {
        _ if i < 700 => "pb",
        _ if i.is_multiple_of(2) => "pa",
        _ if i.is_multiple_of(3) => "pa2",
        _ => "pb",
    };
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for i in 0..1400 {
                let mut o = observation(&format!("o{i:04}"), subject(i));
                if i.is_multiple_of(5) {
                    o["status"] = json!("preliminary");
                }
                if i >= 700 && i.is_multiple_of(11) {
                    // both Alpha patients under one parameter: their first references repeat this resource
                    o["performer"] =
                        json!([{"reference": "Patient/pa"}, {"reference": "Patient/pa2"}]);
                }
                tx.put(&mut o, Expect::Absent)?;
            }
            Ok(())
        })
        .unwrap();
    delete(store, "Observation", "o0702");
    let ids_where = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..1400)
            .filter(|i| keep(*i) && *i != 702)
            .map(|i| format!("o{i:04}"))
            .collect()
    };
    let alpha = |i: usize| subject(i) != "pb";
    for count in [4, 25] {
        let mut query = q("Observation", vec![alpha_patients("subject")]);
        query.count = count;
        assert_eq!(
            walk_pages(store, query),
            ids_where(&alpha),
            "subject, pages of {count}"
        );
    }
    let mut query = q("Observation", vec![alpha_patients("performer")]);
    query.count = 3;
    assert_eq!(
        walk_pages(store, query),
        ids_where(&|i| i >= 700 && i.is_multiple_of(11)),
        "performer"
    );
    let mut query = q("Observation", vec![alpha_patients("subject")]);
    query.filters.push(Filter::one(status_final()));
    query.count = 4;
    assert_eq!(
        walk_pages(store, query),
        ids_where(&|i| alpha(i) && !i.is_multiple_of(5)),
        "subject and final"
    );
}

pub fn index_follows_updates_and_deletes(store: &dyn ResourceStore) {
    create(store, observation("o1", "p1"));
    put(store, observation("o1", "p2"), Expect::Any).unwrap();
    let subj = |p: &str| {
        store
            .search(&q(
                "Observation",
                vec![Predicate::Reference {
                    param: "subject".into(),
                    target_type: None,
                    target_id: p.into(),
                }],
            ))
            .unwrap()
    };
    assert!(
        subj("p1").matches.is_empty(),
        "old index rows removed on update"
    );
    assert_eq!(ids(&subj("p2")), vec!["o1"]);
    delete(store, "Observation", "o1");
    assert!(
        subj("p2").matches.is_empty(),
        "deleted resources are not found"
    );
    assert!(store
        .search(&q("Observation", vec![]))
        .unwrap()
        .matches
        .is_empty());
}

/// Counts of one token (the population count, answered from the token index alone) and of the same token
/// with another filter (answered through the resource rows) agree, and follow updates and deletes; a resource
/// with the code twice counts once.
pub fn token_counts_follow_updates_and_deletes(store: &dyn ResourceStore) {
    let tagged = |id: &str, values: &[&str]| {
        let ids: Vec<Value> = values
            .iter()
            .map(|v| json!({"system": "urn:x", "value": v}))
            .collect();
        json!({"resourceType": "Patient", "id": id, "identifier": ids, "name": [{"family": "Count"}]})
    };
    create(store, tagged("p1", &["A", "A"]));
    create(store, tagged("p2", &["A"]));
    create(store, tagged("p3", &["B"]));
    create(
        store,
        json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "identifier": [{"system": "urn:x", "value": "A"}]}),
    );
    let count = |system: TokenSystem, code: &str, with_name: bool| {
        let mut filters = vec![Predicate::Token {
            param: "identifier".into(),
            system,
            code: code.into(),
            negate: false,
        }];
        if with_name {
            filters.push(Predicate::String {
                param: "family".into(),
                value: "count".into(),
                mode: StringMode::Start,
            });
        }
        let mut query = q("Patient", filters);
        query.total = true;
        let page = store.search(&query).unwrap();
        assert_eq!(page.total, Some(page.matches.len() as u64));
        // a page of none (`_summary=count`) gives the same total, no rows and no next page
        query.count = 0;
        let none = store.search(&query).unwrap();
        assert!(none.matches.is_empty() && none.next.is_none());
        assert_eq!(none.total, page.total);
        page.total.unwrap()
    };
    // the kept count of a whole type against the resources a walk over every page finds
    let patients = |want: u64| {
        let mut query = q("Patient", vec![]);
        query.count = 0;
        query.total = true;
        assert_eq!(store.search(&query).unwrap().total, Some(want));
        assert_eq!(walk_pages(store, q("Patient", vec![])).len() as u64, want);
    };
    patients(3);
    let is = |c: &str| TokenSystem::Is(c.into());
    for with_name in [false, true] {
        assert_eq!(count(is("urn:x"), "A", with_name), 2);
        assert_eq!(count(TokenSystem::Any, "A", with_name), 2);
    }
    put(store, tagged("p2", &["B"]), Expect::Any).unwrap();
    delete(store, "Patient", "p3");
    for with_name in [false, true] {
        assert_eq!(count(is("urn:x"), "A", with_name), 1);
        assert_eq!(count(is("urn:x"), "B", with_name), 1);
        assert_eq!(count(is("urn:y"), "B", with_name), 0);
    }
    patients(2);
    // One transaction writes a resource three times and another once then deletes it: only what stands at
    // commit counts. A code in two systems counts once for "any system", once per system otherwise.
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(&mut tagged("p4", &["A"]), Expect::Absent)?;
            tx.put(&mut tagged("p4", &["C"]), Expect::Any)?;
            let mut two = tagged("p4", &["C"]);
            two["identifier"]
                .as_array_mut()
                .unwrap()
                .push(json!({"system": "urn:y", "value": "C"}));
            tx.put(&mut two, Expect::Any)?;
            tx.put(&mut tagged("p5", &["A"]), Expect::Absent)?;
            tx.delete("Patient", "p5", Expect::Any)?;
            Ok(())
        })
        .unwrap();
    let expect = |count: &dyn Fn(TokenSystem, &str, bool) -> u64| {
        for with_name in [false, true] {
            assert_eq!(count(is("urn:x"), "A", with_name), 1);
            assert_eq!(count(TokenSystem::Any, "A", with_name), 1);
            assert_eq!(count(is("urn:x"), "C", with_name), 1);
            assert_eq!(count(is("urn:y"), "C", with_name), 1);
            assert_eq!(count(TokenSystem::Any, "C", with_name), 1);
        }
    };
    expect(&count);
    patients(3);
    // A failed transaction changes no count; a reindex of unchanged rows neither.
    let failed = store.write(&mut |tx: &mut dyn WriteTx| {
        tx.put(&mut tagged("p6", &["A"]), Expect::Absent)?;
        tx.delete("Patient", "p1", Expect::Any)?;
        Err(crate::StoreError::Backend("abandoned".into()))
    });
    assert!(failed.is_err());
    expect(&count);
    assert!(reindex_all(store, 2) > 0);
    expect(&count);
    patients(3);
    // deleted (twice: the second changes nothing) and created again
    delete(store, "Patient", "p1");
    delete(store, "Patient", "p1");
    assert_eq!(count(is("urn:x"), "A", false), 0);
    patients(2);
    put(store, tagged("p1", &["A"]), Expect::Any).unwrap();
    expect(&count);
    patients(3);
}

/// Writers in parallel, each transaction several resources sharing codes written in different orders (so
/// their count rows are taken in different orders too), some updating and deleting what others made: every
/// write succeeds (at most after the store's own retry) and every count equals the resources that stand.
pub fn token_counts_hold_under_concurrent_writers(store: &dyn ResourceStore) {
    let (threads, rounds) = (6, 12);
    let tagged = |id: String, values: &[&str]| {
        let ids: Vec<Value> = values
            .iter()
            .map(|v| json!({"system": "urn:x", "value": v}))
            .collect();
        json!({"resourceType": "Patient", "id": id, "identifier": ids})
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for r in 0..rounds {
                    let order: &[&str] = if (t + r) % 2 == 0 {
                        &["A", "B", "C"]
                    } else {
                        &["C", "B", "A"]
                    };
                    store
                        .write(&mut |tx: &mut dyn WriteTx| {
                            for (i, code) in order.iter().enumerate() {
                                let id = format!("t{t}-r{r}-{i}");
                                tx.put(&mut tagged(id, &[code, "ALL"]), Expect::Any)?;
                            }
                            // the previous round's first resource moves to D, its second goes
                            if r > 0 {
                                tx.put(
                                    &mut tagged(format!("t{t}-r{}-0", r - 1), &["D", "ALL"]),
                                    Expect::Any,
                                )?;
                                tx.delete("Patient", &format!("t{t}-r{}-1", r - 1), Expect::Any)?;
                            }
                            Ok(())
                        })
                        .unwrap_or_else(|e| panic!("writer {t} round {r}: {e}"));
                }
            });
        }
    });
    let count = |code: &str, fast: bool| {
        let mut filters = vec![Predicate::Token {
            param: "identifier".into(),
            system: TokenSystem::Is("urn:x".into()),
            code: code.into(),
            negate: false,
        }];
        if !fast {
            // a second filter that every resource meets takes the general count
            filters.push(Predicate::Token {
                param: "identifier".into(),
                system: TokenSystem::Any,
                code: "ALL".into(),
                negate: false,
            });
        }
        let mut query = q("Patient", filters);
        query.count = 0;
        query.total = true;
        store.search(&query).unwrap().total.unwrap()
    };
    // per writer: rounds × 3 made, rounds − 1 deleted, rounds − 1 moved to D
    let standing = (threads * (2 * rounds + 1)) as u64;
    assert_eq!(count("ALL", true), standing);
    assert_eq!(count("ALL", false), standing);
    for code in ["A", "B", "C", "D"] {
        assert_eq!(count(code, true), count(code, false), "{code}");
    }
    assert_eq!(count("D", true), (threads * (rounds - 1)) as u64);
    let mut all = q("Patient", vec![]);
    all.count = 0;
    all.total = true;
    assert_eq!(store.search(&all).unwrap().total, Some(standing));
}

/// For the backends' plan tests: a clinic, 10 of its patients, 10 other patients and 300 encounters (of
/// patients `p{i % 20}`), and the unsorted two-level chain `Encounter?patient.organization.name=walk clinic`
/// over them. [`check_chain_walk_page`] checks the first page of its answer.
pub fn chain_walk_fixture(store: &dyn ResourceStore) -> SearchQuery {
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(
                &mut json!({"resourceType": "Organization", "id": "o1", "name": "Walk Clinic"}),
                Expect::Absent,
            )?;
            for p in 0..10 {
                tx.put(
                    &mut json!({"resourceType": "Patient", "id": format!("p{p}"),
                        "managingOrganization": {"reference": "Organization/o1"}}),
                    Expect::Absent,
                )?;
            }
            for i in 0..300 {
                tx.put(
                    &mut json!({"resourceType": "Encounter", "id": format!("e{i}"), "status": "finished",
                        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                        "subject": {"reference": format!("Patient/p{}", i % 20)}}),
                    Expect::Absent,
                )?;
            }
            Ok(())
        })
        .unwrap();
    store.analyze().unwrap();
    let name = Predicate::String {
        param: "name".into(),
        value: "walk clinic".into(),
        mode: StringMode::Start,
    };
    let organization = Predicate::Chain {
        param: "organization".into(),
        targets: vec![("Organization".into(), vec![Filter::one(name)])],
    };
    SearchQuery {
        resource_type: Some("Encounter".into()),
        filters: vec![Filter::one(Predicate::Chain {
            param: "patient".into(),
            targets: vec![("Patient".into(), vec![Filter::one(organization)])],
        })],
        count: 20,
        ..Default::default()
    }
}

/// For the backends' plan tests: the part of `continuum explain`'s text ([`sql::explain_search`]) under the try
/// that reads the first references to a chain's targets (its SQL and plan, up to the next try).
///
/// [`sql::explain_search`]: crate::sql::explain_search
pub fn chain_front_plan(plan: &str) -> &str {
    plan.split("-- then, unless it filled the page, the first references to the chained targets:\n")
        .nth(1)
        .and_then(|rest| rest.split("-- then").next())
        .unwrap_or_else(|| panic!("no try of the first references:\n{plan}"))
}

/// The first page of [`chain_walk_fixture`]'s query: the first 20 encounters of patients p0..p9, and more.
pub fn check_chain_walk_page(store: &dyn ResourceStore, query: &SearchQuery) {
    let page = store.search(query).unwrap();
    let want: Vec<String> = (0..300)
        .filter(|i| i % 20 < 10)
        .take(20)
        .map(|i| format!("e{i}"))
        .collect();
    assert_eq!(ids(&page), want);
    assert!(page.next.is_some());
}

pub fn reindex_walks_live_resources_in_key_order(store: &dyn ResourceStore) {
    for (id, family) in [
        ("r1", "Alpha"),
        ("r2", "Bravo"),
        ("r3", "Charlie"),
        ("r4", "Delta"),
        ("r5", "Echo"),
    ] {
        create(store, patient(id, family));
    }
    delete(store, "Patient", "r3");
    assert_eq!(store.count_live(i64::MIN).unwrap(), 4);
    let step = |after: i64| {
        let mut out = None;
        store
            .write(&mut |tx: &mut dyn WriteTx| {
                out = tx.reindex_after(after, 2)?;
                Ok(())
            })
            .unwrap();
        out
    };
    let first = step(i64::MIN).expect("a first batch");
    assert_eq!(first.resources, 2);
    assert_eq!(store.count_live(first.last_key).unwrap(), 2);
    let second = step(first.last_key).expect("a second batch");
    assert_eq!(second.resources, 2, "the deleted resource is skipped");
    assert!(second.last_key > first.last_key);
    assert_eq!(store.count_live(second.last_key).unwrap(), 0);
    assert_eq!(step(second.last_key), None, "nothing after the last key");
    let family = |f: &str| {
        ids(&store
            .search(&q(
                "Patient",
                vec![Predicate::String {
                    param: "family".into(),
                    value: f.into(),
                    mode: StringMode::Exact,
                }],
            ))
            .unwrap())
    };
    assert_eq!(family("Alpha"), vec!["r1"]);
    assert_eq!(family("Echo"), vec!["r5"]);
    assert!(
        family("Charlie").is_empty(),
        "a deleted resource is not indexed again"
    );
    // an update after the reindex still replaces the rows
    put(store, patient("r1", "Foxtrot"), Expect::Any).unwrap();
    assert!(family("Alpha").is_empty());
    assert_eq!(family("Foxtrot"), vec!["r1"]);
}

pub fn analyze_keeps_answers(store: &dyn ResourceStore) {
    store.analyze().expect("analyze an empty store");
    create(store, patient("a1", "Alpha"));
    create(store, observation("o1", "a1"));
    store.analyze().expect("analyze");
    let page = store
        .search(&q(
            "Observation",
            vec![Predicate::Reference {
                param: "subject".into(),
                target_type: None,
                target_id: "a1".into(),
            }],
        ))
        .unwrap();
    assert_eq!(ids(&page), vec!["o1"]);
}

pub fn settings_round_trip(store: &dyn ResourceStore) {
    assert_eq!(store.setting("k").unwrap(), None);
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.set_setting("k", Some("one")))
        .unwrap();
    assert_eq!(store.setting("k").unwrap().as_deref(), Some("one"));
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.set_setting("k", Some("two")))
        .unwrap();
    assert_eq!(store.setting("k").unwrap().as_deref(), Some("two"));
    // a rolled-back transaction leaves the setting as it was
    let failed = store.write(&mut |tx: &mut dyn WriteTx| {
        tx.set_setting("k", Some("three"))?;
        Err(StoreError::Aborted)
    });
    assert!(failed.is_err());
    assert_eq!(store.setting("k").unwrap().as_deref(), Some("two"));
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.set_setting("k", None))
        .unwrap();
    assert_eq!(store.setting("k").unwrap(), None);
}

pub fn guard_prevents_duplicate_conditional_creates(store: &dyn ResourceStore) {
    let threads = 8;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                store
                    .write(&mut |tx: &mut dyn WriteTx| {
                        tx.guard("Patient?identifier=urn:example:dodid|ID-x")?;
                        let found = tx.search(&q(
                            "Patient",
                            vec![Predicate::Token {
                                param: "identifier".into(),
                                system: TokenSystem::Is("urn:example:dodid".into()),
                                code: "ID-x".into(),
                                negate: false,
                            }],
                        ))?;
                        if found.matches.is_empty() {
                            let mut p = patient("x", "X");
                            p["id"] = json!(format!("t{t}"));
                            p["identifier"][0]["value"] = json!("ID-x");
                            tx.put(&mut p, Expect::Absent)?;
                        }
                        Ok(())
                    })
                    .unwrap();
            });
        }
    });
    let all = store.search(&q("Patient", vec![])).unwrap();
    assert_eq!(all.matches.len(), 1, "exactly one conditional create wins");
}

pub fn concurrent_if_match_updates_have_one_winner(store: &dyn ResourceStore) {
    create(store, patient("p1", "A"));
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..6 {
            let wins = &wins;
            s.spawn(move || {
                match put(store, patient("p1", &format!("T{t}")), Expect::Version(1)) {
                    Ok(_) => {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(StoreError::VersionConflict { .. }) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
            });
        }
    });
    assert_eq!(wins.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(store.read("Patient", "p1").unwrap().unwrap().version, 2);
}

pub fn bodies_round_trip_byte_exact(store: &dyn ResourceStore) {
    let text = "Ünïcödé ✓ 日本語 \"quoted\" \\ back".repeat(200);
    let w = create(
        store,
        json!({"resourceType": "Basic", "id": "b1", "code": {"text": text}}),
    );
    let got = store.read("Basic", "b1").unwrap().unwrap();
    assert_eq!(got.body, w.body);
    assert_eq!(body(&got)["code"]["text"], text.as_str());
}

pub fn search_sorts_with_keyset_paging(store: &dyn ResourceStore) {
    // o3 has no date; o2 and o5 tie on date (store order breaks the tie)
    for (id, date) in [
        ("o1", Some("2024-01-03")),
        ("o2", Some("2024-01-01")),
        ("o3", None),
        ("o4", Some("2024-01-02")),
        ("o5", Some("2024-01-01")),
    ] {
        let mut o = observation(id, "p1");
        match date {
            Some(d) => o["effectiveDateTime"] = json!(d),
            None => {
                o.as_object_mut().unwrap().remove("effectiveDateTime");
            }
        }
        create(store, o);
    }
    let sorted = |descending: bool, count: usize| {
        let mut query = q("Observation", vec![]);
        query.sort = vec![SortKey {
            by: SortBy::Param {
                param: "date".into(),
                table: IndexTable::Date,
            },
            descending,
        }];
        query.count = count;
        walk_pages(store, query)
    };
    let asc = vec!["o2", "o5", "o4", "o1", "o3"];
    let desc = vec!["o1", "o4", "o2", "o5", "o3"];
    for count in [1, 2, 3, 10] {
        assert_eq!(sorted(false, count), asc, "ascending, pages of {count}");
        assert_eq!(sorted(true, count), desc, "descending, pages of {count}");
    }
    let mut by_id = q("Observation", vec![]);
    by_id.sort = vec![SortKey {
        by: SortBy::Id,
        descending: true,
    }];
    by_id.count = 2;
    let first = store.search(&by_id).unwrap();
    assert_eq!(ids(&first), vec!["o5", "o4"]);
    by_id.after = first.next;
    assert_eq!(ids(&store.search(&by_id).unwrap()), vec!["o3", "o2"]);
}

pub fn long_values_are_indexed_by_prefix(store: &dyn ResourceStore) {
    // 10,000 letters that do not compress: B-tree entries have a size limit, the store must still take them
    let mut x: u32 = 12345;
    let family: String = (0..10_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    create(store, patient("long", &family));
    let prefix = Predicate::String {
        param: "family".into(),
        value: family[..20].to_string(),
        mode: StringMode::Start,
    };
    assert_eq!(
        ids(&store.search(&q("Patient", vec![prefix])).unwrap()),
        vec!["long"]
    );
    let whole = Predicate::String {
        param: "family".into(),
        value: family.clone(),
        mode: StringMode::Start,
    };
    assert_eq!(
        ids(&store.search(&q("Patient", vec![whole])).unwrap()),
        vec!["long"]
    );
    let exact = Predicate::String {
        param: "family".into(),
        value: family.clone(),
        mode: StringMode::Exact,
    };
    assert_eq!(
        ids(&store.search(&q("Patient", vec![exact])).unwrap()),
        vec!["long"]
    );
    let not_exact = Predicate::String {
        param: "family".into(),
        value: family[..9_999].to_string(),
        mode: StringMode::Exact,
    };
    assert!(store
        .search(&q("Patient", vec![not_exact]))
        .unwrap()
        .matches
        .is_empty());
    // `:contains` finds text past the indexed prefix too
    let tail = Predicate::String {
        param: "family".into(),
        value: family[9_000..9_012].to_string(),
        mode: StringMode::Contains,
    };
    assert_eq!(
        ids(&store.search(&q("Patient", vec![tail])).unwrap()),
        vec!["long"]
    );
}

/// Raw access to a backend's index tables, bypassing the store, for [`reindex_rebuilds_lost_rows`].
pub trait RawIndex {
    /// Delete every row of every index table (what a definition change "loses").
    fn drop_all_rows(&mut self);
    /// Rows per index table, in [`crate::sql::ALL_INDEX_TABLES`] order.
    fn row_counts(&mut self) -> Vec<i64>;
    /// Run one statement behind the store's back (what a hand edit of the database does).
    fn execute(&mut self, sql: &str);
    /// The first column of the one row `sql` returns.
    fn scalar(&mut self, sql: &str) -> i64;
}

fn reindex_all(store: &dyn ResourceStore, batch: usize) -> usize {
    let mut after = i64::MIN;
    let mut done = 0;
    loop {
        let mut step = None;
        store
            .write(&mut |tx: &mut dyn WriteTx| {
                step = tx.reindex_after(after, batch)?;
                Ok(())
            })
            .unwrap();
        match step {
            Some(s) => {
                after = s.last_key;
                done += s.resources;
            }
            None => return done,
        }
    }
}

/// A reindex restores exactly the rows the writes made (none missing, none twice), and while it runs a reader
/// always finds every resource (old and new rows swap inside one transaction).
pub fn reindex_rebuilds_lost_rows(store: &dyn ResourceStore, raw: &mut dyn RawIndex) {
    let n = 40;
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for i in 0..n {
                tx.put(&mut patient(&format!("p{i}"), &format!("Family{i}")), Expect::Absent)?;
                let mut o = observation(&format!("o{i}"), &format!("p{i}"));
                o["effectiveDateTime"] = json!("2024-05-01T10:00:00Z");
                o["valueQuantity"] = json!({"value": 60 + i, "unit": "/min",
                    "system": "http://unitsofmeasure.org", "code": "/min"});
                tx.put(&mut o, Expect::Absent)?;
            }
            // a number and a uri parameter, so every index table has rows
            tx.put(
                &mut json!({"resourceType": "RiskAssessment", "id": "ra1", "status": "final",
                    "subject": {"reference": "Patient/p0"}, "prediction": [{"probabilityDecimal": 0.3}]}),
                Expect::Absent,
            )?;
            tx.put(
                &mut json!({"resourceType": "ValueSet", "id": "vs1", "status": "active",
                    "url": "http://example.org/fhir/ValueSet/reindex"}),
                Expect::Absent,
            )?;
            Ok(())
        })
        .unwrap();
    let live = 2 * n as usize + 2;
    let before = raw.row_counts();
    assert!(
        before.iter().all(|&c| c > 0),
        "every index table has rows: {before:?}"
    );
    let heart_rate = || {
        let mut query = q("Observation", vec![heart_rate_code()]);
        query.count = 1000;
        query.total = true;
        store.search(&query).unwrap().total
    };
    assert_eq!(heart_rate(), Some(n));

    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut looks = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || looks == 0 {
                assert_eq!(
                    heart_rate(),
                    Some(n),
                    "a reader saw a resource without rows"
                );
                looks += 1;
            }
            looks
        });
        for _ in 0..3 {
            assert_eq!(reindex_all(store, 7), live);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(
        raw.row_counts(),
        before,
        "reindexing intact rows changes nothing"
    );

    raw.drop_all_rows();
    assert_eq!(heart_rate(), Some(0));
    assert_eq!(reindex_all(store, 7), live);
    assert_eq!(raw.row_counts(), before, "every row is back, once");
    assert_eq!(heart_rate(), Some(n));
}

/// `continuum reindex --recount`: counts changed behind the store's back (a hand edit, a partial restore) are
/// found and set right, and nothing else is touched; on an intact database it finds nothing.
pub fn recount_sets_drifted_counts_right(store: &dyn ResourceStore, raw: &mut dyn RawIndex) {
    let n = 12u64;
    for i in 0..3 {
        create(store, patient(&format!("p{i}"), &format!("Recount{i}")));
    }
    for i in 0..n {
        create(store, observation(&format!("o{i}"), &format!("p{}", i % 3)));
    }
    let total = |query: SearchQuery| {
        let mut query = query;
        query.total = true;
        query.count = 0;
        store.search(&query).unwrap().total.unwrap()
    };
    let heart_rate = || total(q("Observation", vec![heart_rate_code()]));
    let of_type = |ty: &str| total(q(ty, vec![]));
    let right = || (heart_rate(), of_type("Observation"), of_type("Patient"));
    assert_eq!(right(), (n, n, 3));
    assert_eq!(store.recount().unwrap(), crate::Recount::default());

    let keys = raw
        .scalar("SELECT COUNT(*) FROM (SELECT DISTINCT pid, kind, hash FROM token_count) k")
        as u64;
    assert!(
        keys > 4,
        "patients and observations carry several tokens: {keys}"
    );
    raw.execute("UPDATE token_count SET n = n + 5");
    raw.execute("UPDATE type_count SET n = n - 1 WHERE type = 'Observation'");
    raw.execute("DELETE FROM type_count WHERE type = 'Patient'");
    let (hr, obs, pats) = right();
    assert!(
        hr != n && obs != n && pats == 0,
        "the edit shows: {:?}",
        (hr, obs, pats)
    );

    assert_eq!(
        store.recount().unwrap(),
        crate::Recount {
            token_keys: keys,
            types: 2
        }
    );
    assert_eq!(right(), (n, n, 3));
    assert_eq!(store.recount().unwrap(), crate::Recount::default());
    // and the writes that follow keep them exact
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.delete("Observation", "o0", Expect::Any).map(|_| ()))
        .unwrap();
    assert_eq!(right(), (n - 1, n - 1, 3));
    assert_eq!(store.recount().unwrap(), crate::Recount::default());
}
