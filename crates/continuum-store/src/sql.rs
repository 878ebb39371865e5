//! SQL shared by the SQL backends: the search compiler and the index-row layout.
//!
//! One compiler for both backends keeps their behaviour identical (the conformance suite checks it). SQL text
//! uses `?` placeholders; the PostgreSQL adapter renumbers them to `$n`. Every value is bound; identifiers
//! come only from enums and constants here.

use std::collections::BTreeSet;

use continuum_fhir::index::{
    token_hash, unit_vector, EARTH_RADIUS_KM, VS_CODE, VS_NOT_CODE, VS_NOT_SYSTEM, VS_SYSTEM,
    VS_UNEXPANDABLE,
};
use continuum_fhir::registry::param_id;
use continuum_fhir::{IndexEntry, IndexValue};

use crate::search::{
    Comparator, Cursor, Filter, IndexTable, Predicate, SearchQuery, SortBy, SortKey, SortValue,
    StringMode, TokenSystem,
};
use crate::{HistoryQuery, Result, StoreError};

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Int(i64),
    Real(f64),
    Text(String),
    /// A list of strings, bound as one `text[]` on PostgreSQL (`r.id = ANY(?)`); the compiler writes it for
    /// that dialect only.
    TextList(Vec<String>),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// The best plan does not depend on the bound values ([`plan_once`]), so PostgreSQL may prepare the
    /// statement once per connection and keep a generic plan instead of planning every call.
    pub plan_once: bool,
}

/// Columns every version query selects, in this order: pk/cursor, type, id, version, last_updated (µs),
/// deleted (0/1), method, body.
pub const VERSION_COLUMNS: &str =
    "v.vpk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body";

/// Insert statement for one index table; values are `res_pk` followed by [`index_rows`] values.
pub fn insert_sql(table: IndexTable) -> &'static str {
    match table {
        IndexTable::String => "INSERT INTO idx_string (res_pk, pid, norm, exact) VALUES (?, ?, ?, ?)",
        IndexTable::Token => "INSERT INTO idx_token (res_pk, pid, sys_code_hash, code_hash, system, code, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
        IndexTable::Reference => "INSERT INTO idx_reference (res_pk, pid, target_type, target_id, url) VALUES (?, ?, ?, ?, ?)",
        IndexTable::Date => "INSERT INTO idx_date (res_pk, pid, low, high) VALUES (?, ?, ?, ?)",
        IndexTable::Number => "INSERT INTO idx_number (res_pk, pid, value, low, high) VALUES (?, ?, ?, ?, ?)",
        IndexTable::Quantity => "INSERT INTO idx_quantity (res_pk, pid, system, code, unit, value, low, high) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        IndexTable::Uri => "INSERT INTO idx_uri (res_pk, pid, value) VALUES (?, ?, ?)",
    }
}

pub const ALL_INDEX_TABLES: [IndexTable; 7] = [
    IndexTable::String,
    IndexTable::Token,
    IndexTable::Reference,
    IndexTable::Date,
    IndexTable::Number,
    IndexTable::Quantity,
    IndexTable::Uri,
];

fn opt_text(s: &Option<String>) -> SqlValue {
    match s {
        Some(s) => SqlValue::Text(s.clone()),
        None => SqlValue::Null,
    }
}

/// Longest indexed string value, in characters. Longer values are indexed by their prefix: B-tree entries have
/// a size limit (PostgreSQL refuses rows over ~2.7 kB), and searches on longer prefixes are vanishingly rare.
/// Query values are cut the same way ([`indexable`]), so a prefix search still finds them.
pub const MAX_INDEXED_CHARS: usize = 256;

/// A value cut to what the index holds (see [`MAX_INDEXED_CHARS`]).
pub fn indexable(s: &str) -> String {
    match s.char_indices().nth(MAX_INDEXED_CHARS) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s.to_string(),
    }
}

/// The index rows of a resource: table and values after `res_pk`.
pub fn index_rows(resource_type: &str, entries: &[IndexEntry]) -> Vec<(IndexTable, Vec<SqlValue>)> {
    let mut rows: Vec<(IndexTable, Vec<SqlValue>)> = Vec::with_capacity(entries.len());
    for e in entries {
        let pid = SqlValue::Int(param_id(resource_type, &e.code));
        let row = match &e.value {
            IndexValue::String { normalized, exact } => (
                IndexTable::String,
                vec![
                    pid,
                    SqlValue::Text(indexable(normalized)),
                    SqlValue::Text(exact.clone()),
                ],
            ),
            IndexValue::Token { system, code, text } => (
                IndexTable::Token,
                vec![
                    pid,
                    SqlValue::Int(token_hash(system.as_deref(), code)),
                    SqlValue::Int(token_hash(None, code)),
                    opt_text(system),
                    SqlValue::Text(code.clone()),
                    // normalised, for `:text` (starts-with, case- and accent-insensitive)
                    match text {
                        Some(t) => {
                            SqlValue::Text(indexable(&continuum_fhir::index::normalize_string(t)))
                        }
                        None => SqlValue::Null,
                    },
                ],
            ),
            IndexValue::Reference {
                target_type,
                target_id,
                url,
            } => (
                IndexTable::Reference,
                vec![
                    pid,
                    opt_text(target_type),
                    opt_text(target_id),
                    opt_text(url),
                ],
            ),
            IndexValue::Date { low, high } => (
                IndexTable::Date,
                vec![pid, SqlValue::Int(*low), SqlValue::Int(*high)],
            ),
            IndexValue::Number { value, low, high } => (
                IndexTable::Number,
                vec![
                    pid,
                    SqlValue::Real(*value),
                    SqlValue::Real(*low),
                    SqlValue::Real(*high),
                ],
            ),
            IndexValue::Quantity {
                value,
                low,
                high,
                system,
                code,
                unit,
            } => (
                IndexTable::Quantity,
                vec![
                    pid,
                    opt_text(system),
                    opt_text(code),
                    opt_text(unit),
                    SqlValue::Real(*value),
                    SqlValue::Real(*low),
                    SqlValue::Real(*high),
                ],
            ),
            IndexValue::Uri { value } => {
                (IndexTable::Uri, vec![pid, SqlValue::Text(indexable(value))])
            }
            // a position is kept as its unit vector (value, low, high = x, y, z): see `unit_vector`
            IndexValue::Position {
                latitude,
                longitude,
            } => {
                let [x, y, z] = unit_vector(*latitude, *longitude);
                (
                    IndexTable::Number,
                    vec![pid, SqlValue::Real(x), SqlValue::Real(y), SqlValue::Real(z)],
                )
            }
        };
        // no de-duplication here: the extractor already drops repeated values per parameter, and rows of
        // different parameters differ by `pid`
        rows.push(row);
    }
    rows
}

struct Builder {
    dialect: Dialect,
    sql: String,
    params: Vec<SqlValue>,
    /// Filters are checked per candidate of a walk in key order ([`compile_walk`]): codes, dates and the
    /// first link of a chain are probed for each row instead of collected.
    walk: bool,
    /// SQLite: write `+alias.pk IN (…)`, so the set is only tested, never used to look rows up: in a walk's
    /// chain, SQLite otherwise probed the target by (type, id, each pk of the set), 548 probes per reference.
    plus_pk: bool,
}

impl Builder {
    fn new(dialect: Dialect) -> Builder {
        Builder {
            dialect,
            sql: String::new(),
            params: Vec::new(),
            walk: false,
            plus_pk: false,
        }
    }
    fn push(&mut self, s: &str) {
        self.sql.push_str(s);
    }
    fn bind(&mut self, v: SqlValue) {
        self.sql.push('?');
        self.params.push(v);
    }
    fn int(&mut self, v: i64) {
        self.bind(SqlValue::Int(v));
    }
    /// A LIMIT written into the SQL rather than bound: SQLite marks a statement whose LIMIT is a bound
    /// parameter as depending on its value, so every rebinding re-prepared it (a tenth of a simple search's
    /// time). The statement cache then holds one statement per page size, which are few.
    fn limit(&mut self, n: usize) {
        self.sql.push_str(" LIMIT ");
        self.sql.push_str(&(n as u64 + 1).to_string());
    }
    fn text(&mut self, v: &str) {
        self.bind(SqlValue::Text(v.to_string()));
    }
}

/// The smallest string greater than every string starting with `prefix`, for index-friendly prefix ranges.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Range comparison of a stored range `[lo_col, hi_col]` against the query range `[low, high]` (R4 search
/// prefix semantics: eq = contained, gt = extends above, ...).
fn range_condition(
    b: &mut Builder,
    lo_col: &str,
    hi_col: &str,
    cmp: Comparator,
    low: i64,
    high: i64,
) {
    match cmp {
        Comparator::Eq => {
            b.push(&format!("({lo_col} >= "));
            b.int(low);
            b.push(&format!(" AND {hi_col} <= "));
            b.int(high);
            b.push(")");
        }
        Comparator::Ne => {
            b.push(&format!("NOT ({lo_col} >= "));
            b.int(low);
            b.push(&format!(" AND {hi_col} <= "));
            b.int(high);
            b.push(")");
        }
        Comparator::Gt => {
            b.push(&format!("{hi_col} > "));
            b.int(high);
        }
        Comparator::Lt => {
            b.push(&format!("{lo_col} < "));
            b.int(low);
        }
        Comparator::Ge => {
            b.push(&format!("({hi_col} > "));
            b.int(high);
            b.push(&format!(" OR ({lo_col} >= "));
            b.int(low);
            b.push(&format!(" AND {hi_col} <= "));
            b.int(high);
            b.push("))");
        }
        Comparator::Le => {
            b.push(&format!("({lo_col} < "));
            b.int(low);
            b.push(&format!(" OR ({lo_col} >= "));
            b.int(low);
            b.push(&format!(" AND {hi_col} <= "));
            b.int(high);
            b.push("))");
        }
        Comparator::Sa => {
            b.push(&format!("{lo_col} > "));
            b.int(high);
        }
        Comparator::Eb => {
            b.push(&format!("{hi_col} < "));
            b.int(low);
        }
        Comparator::Ap => {
            // Approximately: the ranges overlap once the query range is widened by 10% of its width (at
            // least one day), a documented simplification of the spec's "implementation choice".
            let day = 86_400_000_000_i64;
            let slack = ((high.saturating_sub(low)) / 10).max(day);
            b.push(&format!("({lo_col} <= "));
            b.int(high.saturating_add(slack));
            b.push(&format!(" AND {hi_col} >= "));
            b.int(low.saturating_sub(slack));
            b.push(")");
        }
    }
}

fn pid_for(ty: Option<&str>, param: &str) -> Result<i64> {
    let ty = ty.ok_or_else(|| {
        StoreError::InvalidQuery(format!("parameter {param} needs a resource type"))
    })?;
    Ok(param_id(ty, param))
}

/// Comparison of a stored number column against a query value with its implicit precision range
/// `[low, high)` (FHIR R4 search, number: `100` means [99.5, 100.5)).
fn number_condition(b: &mut Builder, col: &str, cmp: Comparator, value: f64, low: f64, high: f64) {
    let real = |b: &mut Builder, v: f64| b.bind(SqlValue::Real(v));
    match cmp {
        Comparator::Eq => {
            b.push(&format!("({col} >= "));
            real(b, low);
            b.push(&format!(" AND {col} < "));
            real(b, high);
            b.push(")");
        }
        Comparator::Ne => {
            b.push(&format!("NOT ({col} >= "));
            real(b, low);
            b.push(&format!(" AND {col} < "));
            real(b, high);
            b.push(")");
        }
        Comparator::Gt | Comparator::Sa => {
            b.push(&format!("{col} > "));
            real(b, value);
        }
        Comparator::Lt | Comparator::Eb => {
            b.push(&format!("{col} < "));
            real(b, value);
        }
        Comparator::Ge => {
            b.push(&format!("{col} >= "));
            real(b, value);
        }
        Comparator::Le => {
            b.push(&format!("{col} <= "));
            real(b, value);
        }
        Comparator::Ap => {
            // approximately: within 10% of the value
            let slack = (value * 0.1).abs();
            b.push(&format!("({col} >= "));
            real(b, value - slack);
            b.push(&format!(" AND {col} <= "));
            real(b, value + slack);
            b.push(")");
        }
    }
}

/// [`number_condition`] on an integer column (coordinates): the bounds are rounded to the integers they admit,
/// so the binds are integers on both backends (PostgreSQL types a parameter compared with a bigint as bigint).
fn integer_condition(b: &mut Builder, col: &str, cmp: Comparator, value: f64, low: f64, high: f64) {
    // saturating float-to-int casts: out-of-range query values still compare sensibly
    let at_least = |b: &mut Builder, v: f64| {
        b.push(&format!("{col} >= "));
        b.int(v.ceil() as i64);
    };
    let at_most = |b: &mut Builder, v: f64| {
        b.push(&format!("{col} <= "));
        b.int(v.floor() as i64);
    };
    match cmp {
        // [low, high): the integers from ceil(low) to below ceil(high)
        Comparator::Eq | Comparator::Ne => {
            b.push(if cmp == Comparator::Ne { "NOT (" } else { "(" });
            at_least(b, low);
            b.push(&format!(" AND {col} < "));
            b.int(high.ceil() as i64);
            b.push(")");
        }
        Comparator::Gt | Comparator::Sa => {
            b.push(&format!("{col} > "));
            b.int(value.floor() as i64);
        }
        Comparator::Lt | Comparator::Eb => {
            b.push(&format!("{col} < "));
            b.int(value.ceil() as i64);
        }
        Comparator::Ge => at_least(b, value),
        Comparator::Le => at_most(b, value),
        Comparator::Ap => {
            let slack = (value * 0.1).abs();
            b.push("(");
            at_least(b, value - slack);
            b.push(" AND ");
            at_most(b, value + slack);
            b.push(")");
        }
    }
}

fn filters_sql(b: &mut Builder, ty: Option<&str>, alias: &str, filters: &[Filter]) -> Result<()> {
    filters_sql_but(b, ty, alias, filters, None)
}

/// [`filters_sql`] without filter `skip` (which the caller has applied itself), still counting it as an anchor.
fn filters_sql_but(
    b: &mut Builder,
    ty: Option<&str>,
    alias: &str,
    filters: &[Filter],
    skip: Option<usize>,
) -> Result<()> {
    // When another filter pins the rows down (a code, a reference, a compartment, an id), a date range is
    // checked per candidate through the per-resource index instead of collecting every resource in the range:
    // the open side of `date=ge2025-03-01` alone matches every later encounter.
    let anchored = b.walk
        || filters.iter().any(|f| {
            !f.any_of.is_empty()
                && f.any_of.iter().all(|p| {
                    pins(p)
                        || matches!(p, Predicate::Token { negate: false, system, .. }
                        if !matches!(system, TokenSystem::OnlySystem(_)))
                })
        });
    // SQLite evaluates each `IN (subquery)` by collecting the whole subquery; when a reference, a compartment
    // or an id anchors the query (a patient, a clinic), a code filter is checked per candidate instead:
    // collecting every HbA1c in the population to keep one patient's ten was most of a "latest results"
    // search at 1 M resources. (PostgreSQL's planner chooses between the two forms itself.)
    let reference_anchor = match b.walk {
        // every candidate of a walk is checked on its own
        true => Some(usize::MAX),
        false => filters
            .iter()
            .position(|f| !f.any_of.is_empty() && f.any_of.iter().all(pins)),
    };
    // A code on the candidates of a reference (a patient's observations of one code) is checked inside the
    // reference's own set, on the reference row, so only the matches read their resource row: a patient's 150
    // observations were each read to keep the 10 of one code (PostgreSQL 1.2 → 0.8 ms, SQLite 0.25 → 0.20 ms
    // for the query of a patient's latest results).
    let folded = match reference_anchor {
        Some(a) if a != usize::MAX && skip != Some(a) => CodesInReference::of(filters, a, skip),
        _ => None,
    };
    let windows: Vec<DateWindow> = date_windows(ty, filters, skip)
        .into_iter()
        // per candidate is cheaper than a long window of the whole population once an anchor has the rows
        .filter(|w| !anchored || w.length() <= MAX_ANCHORED_WINDOW)
        .collect();
    for w in &windows {
        b.push(" AND ");
        date_window(b, alias, w);
    }
    for (n, f) in filters.iter().enumerate() {
        if f.any_of.is_empty()
            || skip == Some(n)
            || windows.iter().any(|w| w.filters.contains(&n))
            || folded
                .as_ref()
                .is_some_and(|f| f.codes.iter().any(|c| c.filter == n))
        {
            continue;
        }
        if let Some(folded) = folded.as_ref().filter(|f| f.anchor == n) {
            b.push(" AND ");
            folded.sql(b, ty, alias)?;
            continue;
        }
        // A list of ids (`_id=a,b,c`, the targets of an `_include`) is one array on PostgreSQL: one index
        // scan, and one statement shape whatever the list's length (the `OR` form planned every id apart).
        if let (Dialect::Postgres, [_, _, ..]) = (b.dialect, f.any_of.as_slice()) {
            let ids: Option<Vec<String>> = f
                .any_of
                .iter()
                .map(|p| match p {
                    Predicate::Id(id) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            if let Some(ids) = ids {
                b.push(&format!(" AND {alias}.id = ANY("));
                b.bind(SqlValue::TextList(ids));
                b.push(")");
                continue;
            }
        }
        b.push(" AND (");
        for (i, p) in f.any_of.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            match p {
                Predicate::Token {
                    param,
                    system: system @ (TokenSystem::Any | TokenSystem::Is(_) | TokenSystem::None),
                    code,
                    negate: false,
                } if b.dialect == Dialect::Sqlite && reference_anchor.is_some_and(|a| a != n) => {
                    let pid = pid_for(ty, param)?;
                    b.push(&format!(
                        "EXISTS (SELECT 1 FROM idx_token INDEXED BY idx_token_res WHERE res_pk = {alias}.pk AND pid = "
                    ));
                    b.int(pid);
                    token_match(b, system, code);
                    b.push(")");
                }
                Predicate::Date {
                    param,
                    cmp,
                    low,
                    high,
                } if anchored => {
                    let pid = pid_for(ty, param)?;
                    // SQLite otherwise may walk the parameter's whole (pid, low, …) index per candidate
                    let hint = match b.dialect {
                        Dialect::Sqlite => " INDEXED BY idx_date_res",
                        Dialect::Postgres => "",
                    };
                    b.push(&format!(
                        "EXISTS (SELECT 1 FROM idx_date{hint} WHERE res_pk = {alias}.pk AND pid = "
                    ));
                    b.int(pid);
                    b.push(" AND ");
                    range_condition(b, "low", "high", *cmp, *low, *high);
                    b.push(")");
                }
                _ => predicate(b, ty, alias, p)?,
            }
        }
        b.push(")");
    }
    Ok(())
}

/// A query's one-reference anchor (filter `anchor`) with the positive codes tested inside its set
/// ([`filters_sql_but`]); each code's filter is written here and nowhere else.
struct CodesInReference<'q> {
    anchor: usize,
    param: &'q str,
    target_type: Option<&'q str>,
    target_id: &'q str,
    codes: Vec<FoldedCode<'q>>,
}

struct FoldedCode<'q> {
    filter: usize,
    param: &'q str,
    system: &'q TokenSystem,
    code: &'q str,
}

impl<'q> CodesInReference<'q> {
    /// When filter `anchor` is a single reference and other filters (but `skip`) are single positive codes.
    fn of(filters: &'q [Filter], anchor: usize, skip: Option<usize>) -> Option<Self> {
        let [Predicate::Reference {
            param,
            target_type,
            target_id,
        }] = filters.get(anchor)?.any_of.as_slice()
        else {
            return None;
        };
        let codes: Vec<FoldedCode<'q>> = filters
            .iter()
            .enumerate()
            .filter(|(m, _)| *m != anchor && skip != Some(*m))
            .filter_map(|(m, f)| match f.any_of.as_slice() {
                [Predicate::Token {
                    param,
                    system: system @ (TokenSystem::Any | TokenSystem::Is(_) | TokenSystem::None),
                    code,
                    negate: false,
                }] => Some(FoldedCode {
                    filter: m,
                    param,
                    system,
                    code,
                }),
                _ => None,
            })
            .collect();
        (!codes.is_empty()).then_some(CodesInReference {
            anchor,
            param,
            target_type: target_type.as_deref(),
            target_id,
            codes,
        })
    }

    /// `alias.pk IN (…)` of the reference's rows whose resources also have each code, tested on the reference row.
    fn sql(&self, b: &mut Builder, ty: Option<&str>, alias: &str) -> Result<()> {
        b.push(&format!(
            "{alias}.pk IN (SELECT xa.res_pk FROM idx_reference xa WHERE xa.pid = "
        ));
        b.int(pid_for(ty, self.param)?);
        b.push(" AND xa.target_id = ");
        b.text(self.target_id);
        if let Some(t) = self.target_type {
            b.push(" AND xa.target_type = ");
            b.text(t);
        }
        // PostgreSQL turns an `EXISTS` into a join and may merge the reference rows with every row of the code
        // (its generic plan did, for any code); a scalar subquery stays a probe per reference row.
        let (open, close) = match b.dialect {
            Dialect::Sqlite => (
                " AND EXISTS (SELECT 1 FROM idx_token INDEXED BY idx_token_res WHERE res_pk = xa.res_pk AND pid = ",
                ")",
            ),
            Dialect::Postgres => (
                " AND (SELECT 1 FROM idx_token WHERE res_pk = xa.res_pk AND pid = ",
                " LIMIT 1) = 1",
            ),
        };
        for c in &self.codes {
            b.push(open);
            b.int(pid_for(ty, c.param)?);
            token_match(b, c.system, c.code);
            b.push(close);
        }
        b.push(")");
        Ok(())
    }
}

const DAY: i64 = 86_400_000_000;

/// The width classes of date rows, `(span, widest row)`: the `span` column of migration 0007 (both schemas
/// compute it the same way; change them together). Wider or open-ended rows are in [`SPAN_OPEN`].
const SPAN_WIDTHS: [(i64, i64); 4] = [
    (0, 2 * DAY),
    (1, 64 * DAY),
    (2, 731 * DAY),
    (3, 7_305 * DAY),
];
const SPAN_OPEN: i64 = 9;

/// The longest window read as a set when another filter anchors the query: a month of a clinic's visits is
/// about 1,400 rows of the population at 1.1 M resources, against some 2,500 probes without it.
const MAX_ANCHORED_WINDOW: i64 = 100 * DAY;

/// The date filters on one single-valued parameter ([`continuum_fhir::fhirpath::single_date`]) that together
/// bound the start of its row from both sides: one stored row must satisfy them all, so they are one index
/// range per width class instead of open ranges (`ge A` reaches every later row) checked one by one.
#[derive(Debug)]
struct DateWindow {
    pid: i64,
    /// The indexes of the filters it replaces.
    filters: Vec<usize>,
    conditions: Vec<(Comparator, i64, i64)>,
    low_min: Option<i64>,
    low_max: i64,
    high_min: Option<i64>,
}

impl DateWindow {
    /// The range of starts a row of the narrowest class may have.
    fn length(&self) -> i64 {
        self.low_max
            .saturating_sub(self.low_from(SPAN_WIDTHS[0].1).unwrap_or(i64::MIN))
    }

    /// The earliest start of a row at most `width` wide that can satisfy the conditions.
    fn low_from(&self, width: i64) -> Option<i64> {
        let by_high = self.high_min.map(|h| h.saturating_sub(width));
        match (self.low_min, by_high) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The [`DateWindow`]s of a query's filters (except `skip`).
fn date_windows(ty: Option<&str>, filters: &[Filter], skip: Option<usize>) -> Vec<DateWindow> {
    let Some(ty) = ty else {
        return Vec::new();
    };
    let mut windows: Vec<(String, DateWindow, Option<i64>)> = Vec::new();
    for (n, f) in filters.iter().enumerate() {
        let [Predicate::Date {
            param,
            cmp,
            low,
            high,
        }] = f.any_of.as_slice()
        else {
            continue;
        };
        if skip == Some(n) || !continuum_fhir::fhirpath::single_date(ty, param) {
            continue;
        }
        let at = match windows.iter().position(|(p, ..)| p == param) {
            Some(at) => at,
            None => {
                windows.push((
                    param.clone(),
                    DateWindow {
                        pid: param_id(ty, param),
                        filters: Vec::new(),
                        conditions: Vec::new(),
                        low_min: None,
                        low_max: i64::MAX,
                        high_min: None,
                    },
                    None,
                ));
                windows.len() - 1
            }
        };
        let (_, w, low_max) = &mut windows[at];
        w.filters.push(n);
        w.conditions.push((*cmp, *low, *high));
        // what each prefix needs of a stored row [low, high] (necessary, not sufficient: the conditions
        // themselves are still checked), from the R4 rules `range_condition` implements
        let raise = |v: &mut Option<i64>, to: i64| *v = Some(v.map_or(to, |c| c.max(to)));
        let lower = |v: &mut Option<i64>, to: i64| *v = Some(v.map_or(to, |c| c.min(to)));
        match cmp {
            Comparator::Eq => {
                raise(&mut w.low_min, *low);
                lower(low_max, *high);
            }
            Comparator::Ne => {}
            Comparator::Gt => raise(&mut w.high_min, high.saturating_add(1)),
            Comparator::Ge => raise(&mut w.high_min, *low),
            Comparator::Lt | Comparator::Eb => lower(low_max, low.saturating_sub(1)),
            Comparator::Le => lower(low_max, *high),
            Comparator::Sa => raise(&mut w.low_min, high.saturating_add(1)),
            Comparator::Ap => {
                let slack = ((high.saturating_sub(*low)) / 10).max(DAY);
                lower(low_max, high.saturating_add(slack));
                raise(&mut w.high_min, low.saturating_sub(slack));
            }
        }
    }
    windows
        .into_iter()
        .filter_map(|(_, mut w, low_max)| {
            w.low_max = low_max?;
            (w.low_min.is_some() || w.high_min.is_some()).then_some(w)
        })
        .collect()
}

/// `alias.pk IN (…)` of the rows in a [`DateWindow`]: one bounded range of `idx_date_span` per width class.
fn date_window(b: &mut Builder, alias: &str, w: &DateWindow) {
    b.push(&format!("{alias}.pk IN ("));
    // When the conditions bound the start themselves (`eq`, `sa`), every class has the same range: one range of
    // `idx_date_low` serves them all (a birth date), and PostgreSQL plans one branch instead of five.
    let one_range = w.low_min.is_some() && w.low_from(SPAN_WIDTHS[0].1) == w.low_min;
    let classes: Vec<(Option<i64>, Option<i64>)> = if one_range {
        vec![(None, w.low_min)]
    } else {
        SPAN_WIDTHS
            .iter()
            .map(|(span, width)| (Some(*span), w.low_from(*width)))
            .chain([(Some(SPAN_OPEN), w.low_min)])
            .collect()
    };
    for (i, (span, from)) in classes.into_iter().enumerate() {
        if i > 0 {
            b.push(" UNION ALL ");
        }
        b.push("SELECT res_pk FROM idx_date WHERE pid = ");
        b.int(w.pid);
        if let Some(span) = span {
            b.push(&format!(" AND span = {span}"));
        }
        if let Some(from) = from {
            b.push(" AND low >= ");
            b.int(from);
        }
        b.push(" AND low <= ");
        b.int(w.low_max);
        for (cmp, low, high) in &w.conditions {
            b.push(" AND ");
            range_condition(b, "low", "high", *cmp, *low, *high);
        }
    }
    b.push(")");
}

/// Whether a predicate confines the rows to a few resources by reference or id (a patient's compartment, a
/// clinic's encounters, the access policy's "patients in your care"), so other filters are better checked
/// per candidate.
fn pins(p: &Predicate) -> bool {
    match p {
        Predicate::Reference { .. } | Predicate::Compartment { .. } | Predicate::Id(_) => true,
        Predicate::Any(ps) => !ps.is_empty() && ps.iter().all(pins),
        Predicate::All(ps) => ps.iter().any(pins),
        _ => false,
    }
}

/// The `idx_token` conditions after `pid` for a token search value.
fn token_match(b: &mut Builder, system: &TokenSystem, code: &str) {
    match system {
        TokenSystem::Any => {
            b.push(" AND code_hash = ");
            b.int(token_hash(None, code));
        }
        TokenSystem::None => {
            b.push(" AND code_hash = ");
            b.int(token_hash(None, code));
            b.push(" AND system IS NULL");
        }
        TokenSystem::Is(sys) => {
            b.push(" AND sys_code_hash = ");
            b.int(token_hash(Some(sys), code));
        }
        TokenSystem::OnlySystem(sys) => {
            b.push(" AND system = ");
            b.text(sys);
        }
    }
}

/// One predicate on the resource row `alias` (of type `ty` when known).
fn predicate(b: &mut Builder, ty: Option<&str>, alias: &str, p: &Predicate) -> Result<()> {
    let plus = if b.plus_pk { "+" } else { "" };
    let pk_in = |negate: bool| format!("{plus}{alias}.pk {}IN (", if negate { "NOT " } else { "" });
    match p {
        Predicate::Id(id) => {
            b.push(&format!("{alias}.id = "));
            b.text(id);
        }
        Predicate::NotId(id) => {
            b.push(&format!("{alias}.id <> "));
            b.text(id);
        }
        Predicate::Near {
            param,
            latitude,
            longitude,
            km,
        } => {
            // within the distance exactly when the dot product of the unit vectors reaches cos(d / R)
            let pid = pid_for(ty, param)?;
            let [x, y, z] = unit_vector(*latitude, *longitude);
            let angle = (km / EARTH_RADIUS_KM).min(std::f64::consts::PI);
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_number WHERE pid = ");
            b.int(pid);
            b.push(" AND value * ");
            b.bind(SqlValue::Real(x));
            b.push(" + low * ");
            b.bind(SqlValue::Real(y));
            b.push(" + high * ");
            b.bind(SqlValue::Real(z));
            b.push(" >= ");
            // a little slack for rounding, so a point at exactly the distance is inside
            b.bind(SqlValue::Real(angle.cos() - 1e-12));
            b.push(")");
        }
        Predicate::LastUpdated { cmp, low, high } => {
            let col = format!("{alias}.last_updated");
            range_condition(b, &col, &col, *cmp, *low, *high)
        }
        Predicate::Token {
            param,
            system,
            code,
            negate,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(*negate));
            b.push("SELECT res_pk FROM idx_token WHERE pid = ");
            b.int(pid);
            token_match(b, system, code);
            b.push(")");
        }
        Predicate::String { param, value, mode } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_string WHERE pid = ");
            b.int(pid);
            match mode {
                StringMode::Exact => {
                    // the normalised form narrows the index range; `exact` decides
                    b.push(" AND norm = ");
                    b.text(&indexable(&continuum_fhir::index::normalize_string(value)));
                    b.push(" AND exact = ");
                    b.text(value);
                }
                StringMode::Start => {
                    let value = &indexable(value);
                    b.push(" AND norm >= ");
                    b.text(value);
                    if let Some(upper) = prefix_upper_bound(value) {
                        b.push(" AND norm < ");
                        b.text(&upper);
                    }
                }
                StringMode::Contains => {
                    // `norm` keeps the first MAX_INDEXED_CHARS characters; past them the lower-cased full
                    // text decides (case-folded, not accent-folded: a fallback for long texts only).
                    let (find, len) = match b.dialect {
                        Dialect::Sqlite => ("instr", "length"),
                        Dialect::Postgres => ("strpos", "char_length"),
                    };
                    b.push(&format!(" AND ({find}(norm, "));
                    b.text(value);
                    b.push(&format!(
                        ") > 0 OR ({len}(norm) >= {MAX_INDEXED_CHARS} AND {find}(lower(exact), "
                    ));
                    b.text(value);
                    b.push(") > 0))");
                }
            }
            b.push(")");
        }
        Predicate::Reference {
            param,
            target_type,
            target_id,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_reference WHERE pid = ");
            b.int(pid);
            b.push(" AND target_id = ");
            b.text(target_id);
            if let Some(t) = target_type {
                b.push(" AND target_type = ");
                b.text(t);
            }
            b.push(")");
        }
        Predicate::TokenText { param, value } => {
            let pid = pid_for(ty, param)?;
            let value = indexable(value);
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_token WHERE pid = ");
            b.int(pid);
            b.push(" AND text >= ");
            b.text(&value);
            if let Some(upper) = prefix_upper_bound(&value) {
                b.push(" AND text < ");
                b.text(&upper);
            }
            b.push(")");
        }
        Predicate::UriPrefix {
            param,
            value,
            below,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_uri WHERE pid = ");
            b.int(pid);
            if *below {
                let value = indexable(value);
                b.push(" AND value >= ");
                b.text(&value);
                if let Some(upper) = prefix_upper_bound(&value) {
                    b.push(" AND value < ");
                    b.text(&upper);
                }
            } else {
                // the stored URI is a prefix of the search value
                b.push(" AND substr(");
                b.text(&indexable(value));
                b.push(", 1, length(value)) = value");
            }
            b.push(")");
        }
        Predicate::Date {
            param,
            cmp,
            low,
            high,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_date WHERE pid = ");
            b.int(pid);
            b.push(" AND ");
            range_condition(b, "low", "high", *cmp, *low, *high);
            b.push(")");
        }
        Predicate::Number {
            param,
            cmp,
            value,
            low,
            high,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_number WHERE pid = ");
            b.int(pid);
            b.push(" AND ");
            number_condition(b, "value", *cmp, *value, *low, *high);
            b.push(")");
        }
        Predicate::Quantity {
            param,
            cmp,
            value,
            low,
            high,
            system,
            code,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_quantity WHERE pid = ");
            b.int(pid);
            b.push(" AND ");
            number_condition(b, "value", *cmp, *value, *low, *high);
            match (system, code) {
                (Some(sys), Some(c)) => {
                    b.push(" AND system = ");
                    b.text(sys);
                    b.push(" AND code = ");
                    b.text(c);
                }
                (None, Some(c)) => {
                    // `value||code`: the code or the human unit
                    b.push(" AND (code = ");
                    b.text(c);
                    b.push(" OR unit = ");
                    b.text(c);
                    b.push(")");
                }
                _ => {}
            }
            b.push(")");
        }
        Predicate::Uri { param, value } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_uri WHERE pid = ");
            b.int(pid);
            b.push(" AND value = ");
            b.text(&indexable(value));
            b.push(")");
        }
        Predicate::Missing {
            param,
            table,
            missing,
        } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(*missing));
            b.push("SELECT res_pk FROM ");
            b.push(table.name());
            b.push(" WHERE pid = ");
            b.int(pid);
            b.push(")");
        }
        Predicate::Compartment {
            target_type,
            target_id,
            params,
        } => {
            let ty = ty.ok_or_else(|| {
                StoreError::InvalidQuery("compartment search needs a resource type".into())
            })?;
            compartment(
                b,
                alias,
                target_type,
                target_id,
                &params.iter().map(|p| param_id(ty, p)).collect::<Vec<_>>(),
            );
        }
        Predicate::InCompartment {
            target_type,
            target_id,
            members,
        } => {
            // everything in the compartment, whatever its type, plus the compartment's own resource
            let pids: Vec<i64> = members
                .iter()
                .flat_map(|(t, params)| params.iter().map(move |p| param_id(t, p)))
                .collect();
            b.push("((");
            b.push(&format!("{alias}.type = "));
            b.text(target_type);
            b.push(&format!(" AND {alias}.id = "));
            b.text(target_id);
            b.push(") OR ");
            compartment(b, alias, target_type, target_id, &pids);
            b.push(")");
        }
        Predicate::Chain { param, targets } => {
            // The reference points at a resource that matches the inner filters (FHIR chained parameters).
            let pid = pid_for(ty, param)?;
            let inner = format!("{alias}c");
            // in a walk, the candidate's own references are followed; the further links stay sets
            let walk = std::mem::replace(&mut b.walk, false);
            let plus = std::mem::replace(&mut b.plus_pk, walk && b.dialect == Dialect::Sqlite);
            // PostgreSQL turns a walk's `EXISTS` into a join that collects every match (its estimates of these
            // joins are one row each), or probes the inner set once per member. There the candidate's own
            // reference rows are tested against the target ids: `OFFSET 0` keeps the test per candidate, and
            // the ids are a hashed subplan built once per query, since an `IN` under an `OR` is not pulled up
            // into a join (`OR 1 = 0` is folded away only after that step). A clinic's patients'
            // encounters: 110 ms -> 0.8 ms at 1.1 M resources.
            let pg_walk = walk && b.dialect == Dialect::Postgres;
            if pg_walk {
                b.push(&format!(
                    "EXISTS (SELECT 1 FROM idx_reference x WHERE x.res_pk = {alias}.pk AND x.pid = "
                ));
            } else if walk {
                b.push("EXISTS (SELECT 1 FROM idx_reference x INDEXED BY idx_reference_res JOIN resource ");
                b.push(&inner);
                b.push(&format!(
                    " ON {inner}.type = x.target_type AND {inner}.id = x.target_id WHERE x.res_pk = {alias}.pk AND x.pid = "
                ));
            } else {
                b.push(&pk_in(false));
                b.push("SELECT x.res_pk FROM idx_reference x JOIN resource ");
                b.push(&inner);
                b.push(&format!(
                    " ON {inner}.type = x.target_type AND {inner}.id = x.target_id WHERE x.pid = "
                ));
            }
            b.int(pid);
            if pg_walk {
                b.push(" AND (");
            } else {
                b.push(&format!(" AND {inner}.deleted = 0 AND ("));
            }
            if targets.is_empty() {
                b.push("1 = 0");
            }
            for (i, (target_type, filters)) in targets.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                if pg_walk {
                    b.push("(x.target_type = ");
                    b.text(target_type);
                    b.push(&format!(
                        " AND x.target_id IN (SELECT {inner}.id FROM resource {inner} WHERE {inner}.type = "
                    ));
                    b.text(target_type);
                    b.push(&format!(" AND {inner}.deleted = 0"));
                    filters_sql(b, Some(target_type), &inner, filters)?;
                    b.push("))");
                } else {
                    b.push(&format!("({inner}.type = "));
                    b.text(target_type);
                    filters_sql(b, Some(target_type), &inner, filters)?;
                    b.push(")");
                }
            }
            b.push(if pg_walk {
                " OR 1 = 0) OFFSET 0)"
            } else {
                "))"
            });
            b.walk = walk;
            b.plus_pk = plus;
        }
        Predicate::All(all) => {
            b.push("(");
            if all.is_empty() {
                b.push("1 = 1");
            }
            for (i, p) in all.iter().enumerate() {
                if i > 0 {
                    b.push(" AND ");
                }
                predicate(b, ty, alias, p)?;
            }
            b.push(")");
        }
        Predicate::Coordinate { param, start, end } => {
            let pid = pid_for(ty, param)?;
            b.push(&pk_in(false));
            b.push("SELECT res_pk FROM idx_date WHERE pid = ");
            b.int(pid);
            for (col, test) in [("low", start), ("high", end)] {
                let Predicate::Number {
                    cmp,
                    value,
                    low,
                    high,
                    ..
                } = test.as_ref()
                else {
                    return Err(StoreError::InvalidQuery(format!(
                        "{param}: a coordinate compares numbers"
                    )));
                };
                b.push(" AND ");
                integer_condition(b, col, *cmp, *value, *low, *high);
            }
            b.push(")");
        }
        Predicate::Any(any) => {
            b.push("(");
            if any.is_empty() {
                b.push("1 = 0");
            }
            for (i, p) in any.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                predicate(b, ty, alias, p)?;
            }
            b.push(")");
        }
        Predicate::NoSecurityLabel { labels } => {
            if labels.is_empty() {
                b.push("1 = 1");
                return Ok(());
            }
            // `_security` is indexed per resource type; without a type every type's parameter id is listed
            let pids: Vec<i64> = match ty {
                Some(t) => vec![param_id(t, "_security")],
                None => continuum_fhir::registry::registry()
                    .resource_types()
                    .iter()
                    .map(|t| param_id(t, "_security"))
                    .collect(),
            };
            b.push(&pk_in(true));
            b.push("SELECT res_pk FROM idx_token WHERE pid IN (");
            for (i, pid) in pids.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.int(*pid);
            }
            b.push(") AND sys_code_hash IN (");
            for (i, (sys, code)) in labels.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.int(token_hash(Some(sys), code));
            }
            b.push("))");
        }
        Predicate::TokenInValueSet {
            param,
            url,
            version,
            negate,
        } => {
            let pid = pid_for(ty, param)?;
            if *negate {
                // `:not-in`: no coding in the set, and the set must exist (an unknown one matches nothing)
                b.push("(EXISTS (");
                value_sets(b, url, version.as_deref());
                b.push(") AND ");
                b.push(&pk_in(true));
            } else {
                b.push(&pk_in(false));
            }
            b.push("SELECT t.res_pk FROM idx_token t WHERE t.pid = ");
            b.int(pid);
            b.push(
                " AND (t.sys_code_hash IN (SELECT m.sys_code_hash FROM idx_token m WHERE m.pid = ",
            );
            b.int(param_id("ValueSet", VS_CODE));
            b.push(" AND m.res_pk IN (");
            value_sets(b, url, version.as_deref());
            b.push(")) OR t.system IN (SELECT s.value FROM idx_uri s WHERE s.pid = ");
            b.int(param_id("ValueSet", VS_SYSTEM));
            b.push(" AND s.res_pk IN (");
            value_sets(b, url, version.as_deref());
            b.push("))) AND t.sys_code_hash NOT IN (SELECT m.sys_code_hash FROM idx_token m WHERE m.pid = ");
            b.int(param_id("ValueSet", VS_NOT_CODE));
            b.push(" AND m.res_pk IN (");
            value_sets(b, url, version.as_deref());
            b.push(")) AND (t.system IS NULL OR t.system NOT IN (SELECT s.value FROM idx_uri s WHERE s.pid = ");
            b.int(param_id("ValueSet", VS_NOT_SYSTEM));
            b.push(" AND s.res_pk IN (");
            value_sets(b, url, version.as_deref());
            b.push("))))");
            if *negate {
                b.push(")");
            }
        }
        Predicate::Has {
            source_type,
            param,
            filters,
        } => {
            // Some `source_type` resource refers to this one through `param` and matches the filters (`_has`).
            let pid = param_id(source_type, param);
            let src = format!("{alias}h");
            b.push(&format!("{alias}.id IN (SELECT x.target_id FROM idx_reference x JOIN resource {src} ON {src}.pk = x.res_pk WHERE x.pid = "));
            b.int(pid);
            b.push(&format!(" AND (x.target_type = {alias}.type OR x.target_type IS NULL) AND {src}.deleted = 0 AND {src}.type = "));
            b.text(source_type);
            filters_sql(b, Some(source_type), &src, filters)?;
            b.push(")");
        }
    }
    Ok(())
}

/// The keys of the current ValueSets with canonical `url` (and `version`) that the server can expand.
fn value_sets(b: &mut Builder, url: &str, version: Option<&str>) {
    b.push("SELECT u.res_pk FROM idx_uri u JOIN resource vs ON vs.pk = u.res_pk WHERE u.pid = ");
    b.int(param_id("ValueSet", "url"));
    b.push(" AND u.value = ");
    b.text(&indexable(url));
    b.push(" AND vs.deleted = 0 AND vs.type = ");
    b.text("ValueSet");
    if let Some(v) = version {
        b.push(" AND u.res_pk IN (SELECT res_pk FROM idx_token WHERE pid = ");
        b.int(param_id("ValueSet", "version"));
        b.push(" AND code_hash = ");
        b.int(token_hash(None, v));
        b.push(")");
    }
    b.push(" AND u.res_pk NOT IN (SELECT res_pk FROM idx_token WHERE pid = ");
    b.int(param_id("ValueSet", VS_UNEXPANDABLE));
    b.push(")");
}

fn compartment(b: &mut Builder, alias: &str, target_type: &str, target_id: &str, pids: &[i64]) {
    if pids.is_empty() {
        b.push("1 = 0");
        return;
    }
    b.push(&format!(
        "{alias}.pk IN (SELECT res_pk FROM idx_reference WHERE target_id = "
    ));
    b.text(target_id);
    b.push(" AND target_type = ");
    b.text(target_type);
    b.push(" AND pid IN (");
    for (i, pid) in pids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.int(*pid);
    }
    b.push("))");
}

fn where_clause(b: &mut Builder, q: &SearchQuery, with_cursor: bool) -> Result<()> {
    where_clause_but(b, q, with_cursor, None)
}

/// [`where_clause`] without filter `skip`.
fn where_clause_but(
    b: &mut Builder,
    q: &SearchQuery,
    with_cursor: bool,
    skip: Option<usize>,
) -> Result<()> {
    b.push(" WHERE r.deleted = 0");
    if let Some(ty) = &q.resource_type {
        b.push(" AND r.type = ");
        b.text(ty);
    } else if !q.types.is_empty() {
        b.push(" AND r.type IN (");
        for (i, t) in q.types.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.text(t);
        }
        b.push(")");
    }
    if with_cursor && q.sort.is_empty() {
        cursor_bound(b, q, " AND r.pk");
    }
    filters_sql_but(b, q.resource_type.as_deref(), "r", &q.filters, skip)
}

/// `key` (with the keyword before it) beyond the cursor of an unsorted page: after it reading forward, before
/// it reading backwards; nothing on the first page.
fn cursor_bound(b: &mut Builder, q: &SearchQuery, key: &str) {
    if let Some(after) = &q.after {
        let op = match (q.backward, q.inclusive) {
            (false, false) => ">",
            (false, true) => ">=",
            (true, false) => "<",
            (true, true) => "<=",
        };
        b.push(&format!("{key} {op} "));
        b.int(after.pk);
    }
}

/// SQLite: a filter that is a single reference to one typed target, with its parameter's `pid`, the target
/// type and id (see the SQLite branch of [`compile_search`]).
fn driving_reference(q: &SearchQuery) -> Option<(usize, i64, String, String)> {
    q.filters
        .iter()
        .enumerate()
        .find_map(|(n, f)| match f.any_of.as_slice() {
            [Predicate::Reference {
                param,
                target_type: Some(t),
                target_id,
            }] => pid_for(q.resource_type.as_deref(), param)
                .ok()
                .map(|pid| (n, pid, t.clone(), target_id.clone())),
            _ => None,
        })
}

/// PostgreSQL: the filter that can drive an unsorted page in key order: a single reference to one typed
/// target (a clinic's encounters) or a chain (the encounters of the patients of an organization). Its
/// matching keys are taken distinct and in order before any resource row is read, and the resource rows are
/// then read from the front until the page is full. Written as `pk IN (…)`, PostgreSQL hashed every match
/// (36,698 references to one clinic at 1.1 M resources), read each one's resource row and sorted the survivors
/// to keep 21: 340 ms instead of 13 ms. (On SQLite this derived-table form made it materialise and sort; it
/// has its own form, [`driving_reference`].)
fn driving_filter(q: &SearchQuery) -> Option<usize> {
    q.filters.iter().position(|f| {
        matches!(
            f.any_of.as_slice(),
            [Predicate::Reference {
                target_type: Some(_),
                ..
            }] | [Predicate::Chain { .. }]
        )
    })
}

/// The expression of a sort key on resource row `r`.
fn sort_expr(b: &mut Builder, q: &SearchQuery, key: &SortKey) -> Result<()> {
    match &key.by {
        SortBy::Id => b.push("r.id"),
        SortBy::LastUpdated => b.push("r.last_updated"),
        SortBy::Param { param, table } => {
            let pid = pid_for(q.resource_type.as_deref(), param)?;
            let agg = if key.descending { "MAX" } else { "MIN" };
            let col = match (table, key.descending) {
                (IndexTable::Date, false) => "low",
                (IndexTable::Date, true) => "high",
                (IndexTable::String, _) => "norm",
                (IndexTable::Token, _) => "code",
                (IndexTable::Reference, _) => "target_id",
                (IndexTable::Number | IndexTable::Quantity | IndexTable::Uri, _) => "value",
            };
            // SQLite's planner prefers the (pid, value) index here, which walks every value of the parameter
            // for each row; the per-resource index finds the few values of this one resource.
            let hint = match b.dialect {
                Dialect::Sqlite => format!(" INDEXED BY {}_res", table.name()),
                Dialect::Postgres => String::new(),
            };
            b.push(&format!(
                "(SELECT {agg}({col}) FROM {}{hint} WHERE res_pk = r.pk AND pid = ",
                table.name()
            ));
            b.int(pid);
            b.push(")");
        }
    }
    Ok(())
}

fn bind_sort_value(b: &mut Builder, v: &SortValue) {
    match v {
        SortValue::Int(i) => b.int(*i),
        SortValue::Real(f) => b.bind(SqlValue::Real(*f)),
        SortValue::Text(t) => b.text(t),
        SortValue::Null => b.bind(SqlValue::Null),
    }
}

/// Rows strictly after `cursor` in the order (sort keys with missing values last, then `pk`): the keyset
/// condition `k0 > c0 OR (k0 = c0 AND (k1 > c1 OR (… AND pk > cpk)))`. With `backward`, rows before it
/// instead; with `inclusive`, the cursor's own row too.
fn keyset_after(b: &mut Builder, q: &SearchQuery, cursor: &Cursor, i: usize) {
    let keys = &q.sort;
    if i == keys.len() {
        b.push(match (q.backward, q.inclusive) {
            (false, false) => "t.pk > ",
            (false, true) => "t.pk >= ",
            (true, false) => "t.pk < ",
            (true, true) => "t.pk <= ",
        });
        b.int(cursor.pk);
        return;
    }
    let col = format!("t.s{i}");
    match (cursor.values.get(i).unwrap_or(&SortValue::Null), q.backward) {
        (SortValue::Null, false) => {
            // nothing sorts after a missing value except later missing values
            b.push(&format!("({col} IS NULL AND "));
            keyset_after(b, q, cursor, i + 1);
            b.push(")");
        }
        (SortValue::Null, true) => {
            // every present value sorts before a missing one
            b.push(&format!("({col} IS NOT NULL OR ({col} IS NULL AND "));
            keyset_after(b, q, cursor, i + 1);
            b.push("))");
        }
        (v, backward) => {
            let op = if keys[i].descending != backward {
                "<"
            } else {
                ">"
            };
            // missing values sort after every present one
            let missing = if backward {
                "("
            } else {
                &format!("({col} IS NULL OR ")
            };
            b.push(missing);
            b.push(&format!("{col} {op} "));
            bind_sort_value(b, v);
            b.push(&format!(" OR ({col} = "));
            bind_sort_value(b, v);
            b.push(" AND ");
            keyset_after(b, q, cursor, i + 1);
            b.push("))");
        }
    }
}

/// The columns of a page query: the cursor key, then [`VERSION_COLUMNS`].
const COLUMNS: &str = "t.pk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body";
/// Closes a page query's chosen rows `t` and joins their bodies.
const BODIES: &str = ") t JOIN resource_version v ON v.vpk = t.current_vpk ORDER BY ";

/// How many resources of the type a walk ([`compile_walk`]) reads before giving up.
pub const WALK_WINDOW: usize = 600;

/// What `continuum explain` prints for a search: each first try, then the full query, each under a line that
/// says when it runs; `each` appends one query's SQL and the backend's plan.
pub fn explain_search(
    dialect: Dialect,
    q: &SearchQuery,
    mut each: impl FnMut(&Compiled, &mut String) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    let tries = first_tries(dialect, q)?;
    for (i, first) in tries.iter().enumerate() {
        let when = if i == 0 {
            "first"
        } else {
            "then, unless it filled the page"
        };
        out.push_str(&format!("-- {when}, {}:\n", first.what));
        each(&first.query, &mut out)?;
    }
    if !tries.is_empty() {
        out.push_str("-- then, unless it filled the page:\n");
    }
    each(&compile_search(dialect, q)?, &mut out)?;
    Ok(out)
}

/// A first try at an unsorted page of a chained search that walks the resources of the type in key
/// order, at most [`WALK_WINDOW`] of them, and checks each one's own reference (`Encounter?patient.
/// organization.name=…`). When it finds a page and one more, they are the first matches of the whole
/// query; otherwise the caller runs [`compile_search`]. The chain as a set collected every match first:
/// 23,000 encounters of the patients of one clinic, 10 ms, to keep 21 (the walk reads about 170).
/// `None` when the query has no such shape.
fn compile_walk(dialect: Dialect, q: &SearchQuery) -> Result<Option<Compiled>> {
    let chained = q.filters.iter().any(|f| {
        f.any_of
            .iter()
            .any(|p| matches!(p, Predicate::Chain { .. }))
    });
    let Some(ty) = q.resource_type.as_deref() else {
        return Ok(None);
    };
    if !chained
        || !q.sort.is_empty()
        || q.backward
        || q.count == 0
        || driving_reference(q).is_some()
    {
        return Ok(None);
    }
    let mut b = Builder::new(dialect);
    b.walk = true;
    b.push("SELECT ");
    b.push(COLUMNS);
    // The rows are read in key order from the type's index and the walk stops as soon as the page is full;
    // the window's last key bounds it when matches are rare. (A window as a subquery, `(… LIMIT 600) w`, lost
    // the order: SQLite checked all 600 and sorted them, 2.8 ms against 1.0 ms for a clinic's patients' page.)
    let by_type = match dialect {
        Dialect::Sqlite => " INDEXED BY resource_type_pk",
        Dialect::Postgres => "",
    };
    b.push(" FROM (SELECT r.pk, r.current_vpk FROM resource r");
    b.push(by_type);
    where_clause(&mut b, q, true)?;
    b.push(" AND r.pk <= COALESCE((SELECT pk FROM resource");
    b.push(by_type);
    b.push(" WHERE type = ");
    b.text(ty);
    cursor_bound(&mut b, q, " AND pk");
    b.push(&format!(
        " ORDER BY pk LIMIT 1 OFFSET {}), {})",
        WALK_WINDOW - 1,
        i64::MAX
    ));
    b.push(" ORDER BY r.pk");
    b.limit(q.count);
    b.push(BODIES);
    b.push("t.pk");
    Ok(Some(Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: false,
    }))
}

/// A query tried before [`compile_search`]: when it returns a page and one more, they are the first matches of
/// the whole query; otherwise the caller goes on to the next try, and last to [`compile_search`].
pub struct FirstTry {
    /// What it reads, for `explain`.
    pub what: String,
    pub query: Compiled,
}

/// The first tries of a search, in the order to run them (none for most searches).
pub fn first_tries(dialect: Dialect, q: &SearchQuery) -> Result<Vec<FirstTry>> {
    let mut tries = Vec::new();
    if let Some(query) = compile_walk(dialect, q)? {
        tries.push(FirstTry {
            what: format!("a walk of at most {WALK_WINDOW} resources in key order"),
            query,
        });
    }
    if let Some(query) = compile_chain_front(dialect, q)? {
        tries.push(FirstTry {
            what: "the first references to the chained targets".into(),
            query,
        });
    }
    Ok(tries)
}

/// A first try at an unsorted page of a chained search (`Encounter?patient.organization.name=…`) that keeps
/// only the first references. The targets (the clinic's patients) are found first; their references are
/// read from the reference index and only the smallest page-and-one-more keys are kept as they stream by (a
/// sort with a limit), before any resource row is read. The chain as a set put every referring key into a
/// temporary index to read them back in order (9,393 encounters of a clinic's 227 patients at 1.1 M
/// resources, to keep 21): 4.0 ms against 1.0 ms. It comes short (and the caller goes on) when a resource
/// refers to two targets, so the keys kept are fewer distinct ones. Only for a chain alone: with other
/// filters (a code; the access policy's own chain to the patients in a clinician's care) the keys kept could
/// be rejected and the set form would run after it, paying twice. `None` when the query has no such shape.
fn compile_chain_front(dialect: Dialect, q: &SearchQuery) -> Result<Option<Compiled>> {
    let Some(ty) = q.resource_type.as_deref() else {
        return Ok(None);
    };
    if !q.sort.is_empty() || q.backward || q.count == 0 || driving_reference(q).is_some() {
        return Ok(None);
    }
    let (param, targets) = match q.filters.as_slice() {
        [f] => match f.any_of.as_slice() {
            [Predicate::Chain { param, targets }] if !targets.is_empty() => (param, targets),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let pid = pid_for(Some(ty), param)?;
    // SQLite: CROSS JOIN keeps the targets the outer loop
    let (join, by_target) = match dialect {
        Dialect::Sqlite => (" CROSS JOIN", " INDEXED BY idx_reference_target"),
        Dialect::Postgres => (" JOIN", ""),
    };
    let mut b = Builder::new(dialect);
    // the targets first, on their own (a materialised CTE: PostgreSQL could otherwise walk the references in
    // key order and test each against the targets, which is the walk's job)
    b.push("WITH chained AS MATERIALIZED (SELECT rc.type, rc.id FROM resource rc WHERE rc.deleted = 0 AND (");
    for (i, (target_type, filters)) in targets.iter().enumerate() {
        if i > 0 {
            b.push(" OR ");
        }
        b.push("(rc.type = ");
        b.text(target_type);
        filters_sql(&mut b, Some(target_type), "rc", filters)?;
        b.push(")");
    }
    b.push(")) SELECT ");
    b.push(COLUMNS);
    b.push(" FROM (SELECT r.pk, r.current_vpk FROM (SELECT DISTINCT f.res_pk FROM (SELECT x.res_pk FROM chained");
    b.push(join);
    b.push(" idx_reference x");
    b.push(by_target);
    b.push(" ON x.pid = ");
    b.int(pid);
    b.push(" AND x.target_id = chained.id AND x.target_type = chained.type");
    cursor_bound(&mut b, q, " WHERE x.res_pk");
    b.push(" ORDER BY x.res_pk");
    b.limit(q.count);
    b.push(") f");
    b.push(") a JOIN resource r ON r.pk = a.res_pk");
    where_clause_but(&mut b, q, true, Some(0))?;
    b.push(" ORDER BY a.res_pk");
    b.limit(q.count);
    b.push(BODIES);
    b.push("t.pk");
    Ok(Some(Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: false,
    }))
}

/// The page query: selects [`VERSION_COLUMNS`] (with `r.pk` as the cursor column) of up to `count + 1` rows,
/// so the caller can tell whether a next page exists.
///
/// With sort keys, column 8 onwards hold the sort values (`s0`, `s1`, … of the kinds [`SortBy::kind`] gives), for
/// the caller to build the next [`Cursor`] from the last row.
pub fn compile_search(dialect: Dialect, q: &SearchQuery) -> Result<Compiled> {
    let mut b = Builder::new(dialect);
    // Why bodies are joined last: the matches are chosen, sorted and limited on `resource` rows alone, and
    // only the page's rows fetch their body from `resource_version` (joining first made PostgreSQL fetch
    // every match's body before a top-N sort kept 21 of them).
    let driver = match dialect {
        Dialect::Postgres if q.sort.is_empty() => driving_filter(q),
        _ => None,
    };
    let sqlite_driver = match dialect {
        Dialect::Sqlite if q.sort.is_empty() => driving_reference(q),
        _ => None,
    };
    if let Some((n, pid, target_type, target_id)) = sqlite_driver {
        // SQLite: the reference index itself leads (CROSS JOIN keeps it the outer loop) and is read in key
        // order, grouped so a resource referring twice counts once, until the page is full. `pk IN (…)`
        // collected all of a clinic's 36,698 encounters first (3.4 ms instead of 9.2 ms at 1.1 M resources).
        let order = if q.backward { "t.pk DESC" } else { "t.pk" };
        b.push("SELECT ");
        b.push(COLUMNS);
        b.push(" FROM (SELECT r.pk, r.current_vpk FROM idx_reference x INDEXED BY idx_reference_target CROSS JOIN resource r ON r.pk = x.res_pk AND x.pid = ");
        b.int(pid);
        b.push(" AND x.target_id = ");
        b.text(&target_id);
        b.push(" AND x.target_type = ");
        b.text(&target_type);
        cursor_bound(&mut b, q, " AND x.res_pk");
        where_clause_but(&mut b, q, true, Some(n))?;
        b.push(if q.backward {
            " GROUP BY x.res_pk ORDER BY x.res_pk DESC"
        } else {
            " GROUP BY x.res_pk ORDER BY x.res_pk"
        });
        b.limit(q.count);
        b.push(BODIES);
        b.push(order);
    } else if let Some(n) = driver {
        let order = if q.backward { "t.pk DESC" } else { "t.pk" };
        // the filter's own `r.pk IN (subquery)`, compiled apart so its subquery can lead the FROM clause
        let mut own = Builder::new(dialect);
        for p in &q.filters[n].any_of {
            predicate(&mut own, q.resource_type.as_deref(), "r", p)?;
        }
        let Some(subquery) = own
            .sql
            .strip_prefix("r.pk IN (")
            .and_then(|s| s.strip_suffix(')'))
        else {
            return Err(StoreError::Backend(format!(
                "a driving filter compiled to {}",
                own.sql
            )));
        };
        b.push("SELECT ");
        b.push(COLUMNS);
        b.push(" FROM (SELECT r.pk, r.current_vpk FROM (SELECT DISTINCT d.res_pk FROM (");
        b.push(subquery);
        b.params.extend(own.params);
        b.push(") d");
        // the cursor bounds the keys themselves (PostgreSQL does not carry `r.pk > x` across the join)
        cursor_bound(&mut b, q, " WHERE d.res_pk");
        b.push(") a JOIN resource r ON r.pk = a.res_pk");
        where_clause_but(&mut b, q, true, Some(n))?;
        b.push(if q.backward {
            " ORDER BY a.res_pk DESC"
        } else {
            " ORDER BY a.res_pk"
        });
        b.limit(q.count);
        b.push(BODIES);
        b.push(order);
    } else if q.sort.is_empty() {
        let order = if q.backward { "t.pk DESC" } else { "t.pk" };
        b.push("SELECT ");
        b.push(COLUMNS);
        b.push(" FROM (SELECT r.pk, r.current_vpk FROM resource r");
        where_clause(&mut b, q, true)?;
        b.push(if q.backward {
            " ORDER BY r.pk DESC"
        } else {
            " ORDER BY r.pk"
        });
        b.limit(q.count);
        b.push(BODIES);
        b.push(order);
    } else {
        // The sort values are computed once in a derived table, so the keyset condition and ORDER BY can
        // name them (PostgreSQL cannot reference SELECT aliases in WHERE).
        let mut order = String::new();
        for (i, key) in q.sort.iter().enumerate() {
            // missing values last in both directions, on both backends (their NULL orders differ); paging
            // backwards reads the same order from the other end
            let (nulls, dir) = match (q.backward, key.descending) {
                (false, false) => ("", ""),
                (false, true) => ("", " DESC"),
                (true, false) => (" DESC", " DESC"),
                (true, true) => (" DESC", ""),
            };
            order.push_str(&format!(
                "(CASE WHEN t.s{i} IS NULL THEN 1 ELSE 0 END){nulls}, t.s{i}{dir}, "
            ));
        }
        order.push_str(if q.backward { "t.pk DESC" } else { "t.pk" });
        b.push("SELECT ");
        b.push(COLUMNS);
        for i in 0..q.sort.len() {
            b.push(&format!(", t.s{i}"));
        }
        b.push(" FROM (SELECT t.* FROM (SELECT r.pk, r.current_vpk");
        for (i, key) in q.sort.iter().enumerate() {
            b.push(", ");
            sort_expr(&mut b, q, key)?;
            b.push(&format!(" AS s{i}"));
        }
        b.push(" FROM resource r");
        where_clause(&mut b, q, false)?;
        b.push(") t");
        if let Some(cursor) = &q.after {
            b.push(" WHERE ");
            keyset_after(&mut b, q, cursor, 0);
        }
        b.push(" ORDER BY ");
        b.push(&order);
        b.limit(q.count);
        b.push(BODIES);
        b.push(&order);
    }
    Ok(Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: dialect == Dialect::Postgres && plan_once(q),
    })
}

/// `token_count.kind` of a count by `system|code` (the row's `sys_code_hash`).
pub const COUNT_BY_SYSTEM_AND_CODE: i64 = 0;
/// `token_count.kind` of a count by code in any system (the row's `code_hash`).
pub const COUNT_BY_CODE: i64 = 1;
/// Shards of a count on PostgreSQL (a writer adds to the shard of its connection, so concurrent writers of
/// one common code, such as every vital sign's category, do not queue on one row); SQLite's single writer
/// uses shard 0 alone.
pub const COUNT_SHARDS: i64 = 16;

/// A key of `token_count`: (pid, kind, hash).
pub type CountKey = (i64, i64, i64);

/// The keys a resource's token rows are counted under, each once however many rows share it: `rows` are
/// (pid, sys_code_hash, code_hash) of its `idx_token` rows.
pub fn count_keys(rows: impl IntoIterator<Item = (i64, i64, i64)>) -> BTreeSet<CountKey> {
    let mut keys = BTreeSet::new();
    for (pid, sys_code, code) in rows {
        keys.insert((pid, COUNT_BY_SYSTEM_AND_CODE, sys_code));
        keys.insert((pid, COUNT_BY_CODE, code));
    }
    keys
}

/// (pid, sys_code_hash, code_hash) of an [`index_rows`] token row.
pub fn token_row_key(values: &[SqlValue]) -> Option<(i64, i64, i64)> {
    match values {
        [SqlValue::Int(pid), SqlValue::Int(sys_code), SqlValue::Int(code), ..] => {
            Some((*pid, *sys_code, *code))
        }
        _ => None,
    }
}

/// What changes in `token_count` when a resource's token keys go from `old` to `new`: +1 or -1 per key, in
/// key order (so concurrent writers lock count rows in one order).
pub fn count_deltas(old: &BTreeSet<CountKey>, new: &BTreeSet<CountKey>) -> Vec<(CountKey, i64)> {
    let mut deltas: Vec<(CountKey, i64)> = old
        .difference(new)
        .map(|k| (*k, -1))
        .chain(new.difference(old).map(|k| (*k, 1)))
        .collect();
    deltas.sort_unstable();
    deltas
}

/// `continuum reindex --recount`, part 1: add to shard 0 of every `token_count` key the difference between the
/// distinct live resources its index rows name and the kept count (the DEVELOPERS.md check, applied). The
/// number of rows it writes is the number of keys that were wrong. The outer `WHERE true` keeps SQLite from
/// reading `ON CONFLICT` as a join constraint.
pub const RECOUNT_TOKENS: &str = "INSERT INTO token_count (pid, kind, hash, shard, n) \
     SELECT pid, kind, hash, 0, d FROM (SELECT pid, kind, hash, -SUM(n) AS d FROM ( \
       SELECT pid, kind, hash, n FROM token_count \
       UNION ALL SELECT pid, 0, sys_code_hash, -COUNT(DISTINCT res_pk) FROM idx_token GROUP BY pid, sys_code_hash \
       UNION ALL SELECT pid, 1, code_hash, -COUNT(DISTINCT res_pk) FROM idx_token GROUP BY pid, code_hash \
     ) c GROUP BY pid, kind, hash HAVING SUM(n) <> 0) w WHERE true \
     ON CONFLICT (pid, kind, hash, shard) DO UPDATE SET n = token_count.n + excluded.n";

/// `continuum reindex --recount`, part 2: the same for `type_count` against the live resources.
pub const RECOUNT_TYPES: &str = "INSERT INTO type_count (type, shard, n) \
     SELECT type, 0, d FROM (SELECT type, -SUM(n) AS d FROM ( \
       SELECT type, n FROM type_count \
       UNION ALL SELECT type, -COUNT(*) FROM resource WHERE deleted = 0 GROUP BY type \
     ) c GROUP BY type HAVING SUM(n) <> 0) w WHERE true \
     ON CONFLICT (type, shard) DO UPDATE SET n = type_count.n + excluded.n";

/// Whether the best plan for `q` is the same whatever its values: every filter is a plain one (no chain,
/// `_has` or `$everything`) and one of them bounds the rows to one patient's record (references to Patients,
/// the Patient compartment) or to a list of ids. A person's record is small whichever person it is, so the plan
/// starts from it every time. A clinic, a code or a date range can match anything from nothing to millions,
/// and a generic plan there went badly wrong: with every search prepared, not one request for a clinic's month
/// of encounters finished in an 8 s benchmark run at 1.1 M resources (about 300/s when planned per call), so
/// those are planned with their values on every call.
pub fn plan_once(q: &SearchQuery) -> bool {
    fn plain(p: &Predicate) -> bool {
        match p {
            Predicate::Chain { .. } | Predicate::Has { .. } | Predicate::InCompartment { .. } => {
                false
            }
            Predicate::Any(ps) | Predicate::All(ps) => ps.iter().all(plain),
            _ => true,
        }
    }
    fn one_record(ty: Option<&str>, p: &Predicate) -> bool {
        match p {
            Predicate::Reference {
                target_type: Some(t),
                ..
            } => t == "Patient",
            // `Observation?patient=123`: a bare id of a parameter that points at a Patient (R4's shared
            // `patient` parameters also list Group, whose own records are as small)
            Predicate::Reference {
                param,
                target_type: None,
                ..
            } => ty
                .and_then(|ty| continuum_fhir::registry().search_param(ty, param))
                .is_some_and(|def| {
                    def.target.iter().any(|t| t == "Patient")
                        && def.target.iter().all(|t| t == "Patient" || t == "Group")
                }),
            Predicate::Compartment { target_type, .. } => target_type == "Patient",
            Predicate::Id(_) => true,
            Predicate::Any(ps) => !ps.is_empty() && ps.iter().all(|p| one_record(ty, p)),
            Predicate::All(ps) => ps.iter().any(|p| one_record(ty, p)),
            _ => false,
        }
    }
    let ty = q.resource_type.as_deref();
    q.filters.iter().all(|f| f.any_of.iter().all(plain))
        && q.filters
            .iter()
            .any(|f| !f.any_of.is_empty() && f.any_of.iter().all(|p| one_record(ty, p)))
}

/// The count query for `_total`.
pub fn compile_count(dialect: Dialect, q: &SearchQuery) -> Result<Compiled> {
    let mut b = Builder::new(dialect);
    // A count of one code (`Observation?code=X&_summary=count` over the population) is kept up to date by
    // every write in `token_count` (distinct live resources per parameter and `system|code` or code), so it
    // reads at most [`COUNT_SHARDS`] rows whatever the population: counting the index rows took 1.4 ms at
    // 1.1 M resources and grew with them.
    if let ([filter], Some(ty), true) = (q.filters.as_slice(), &q.resource_type, q.types.is_empty())
    {
        if let [Predicate::Token {
            param,
            system: system @ (TokenSystem::Any | TokenSystem::Is(_)),
            code,
            negate: false,
        }] = filter.any_of.as_slice()
        {
            let (kind, hash) = match system {
                TokenSystem::Is(sys) => (COUNT_BY_SYSTEM_AND_CODE, token_hash(Some(sys), code)),
                _ => (COUNT_BY_CODE, token_hash(None, code)),
            };
            b.push("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM token_count WHERE pid = ");
            b.int(param_id(ty, param));
            b.push(" AND kind = ");
            b.int(kind);
            b.push(" AND hash = ");
            b.int(hash);
            return Ok(Compiled {
                sql: b.sql,
                params: b.params,
                plan_once: true,
            });
        }
    }
    // A whole type (`Observation?_summary=count`): its kept count, likewise.
    if let (true, Some(ty), true) = (q.filters.is_empty(), &q.resource_type, q.types.is_empty()) {
        b.push("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM type_count WHERE type = ");
        b.text(ty);
        return Ok(Compiled {
            sql: b.sql,
            params: b.params,
            plan_once: true,
        });
    }
    b.push("SELECT COUNT(*) FROM resource r");
    where_clause(&mut b, q, false)?;
    Ok(Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: dialect == Dialect::Postgres && plan_once(q),
    })
}

/// The history page query, newest first, `count + 1` rows.
pub fn compile_history(dialect: Dialect, q: &HistoryQuery) -> Compiled {
    let mut b = Builder::new(dialect);
    b.push("SELECT ");
    b.push(VERSION_COLUMNS);
    b.push(" FROM resource_version v WHERE 1 = 1");
    history_filters(&mut b, q);
    if let Some(before) = q.before {
        b.push(" AND v.vpk < ");
        b.int(before);
    }
    b.push(" ORDER BY v.vpk DESC");
    b.limit(q.count);
    Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: false,
    }
}

pub fn compile_history_count(dialect: Dialect, q: &HistoryQuery) -> Compiled {
    let mut b = Builder::new(dialect);
    b.push("SELECT COUNT(*) FROM resource_version v WHERE 1 = 1");
    history_filters(&mut b, q);
    Compiled {
        sql: b.sql,
        params: b.params,
        plan_once: false,
    }
}

fn history_filters(b: &mut Builder, q: &HistoryQuery) {
    if let Some(ty) = &q.resource_type {
        b.push(" AND v.type = ");
        b.text(ty);
    }
    if let Some(id) = &q.id {
        b.push(" AND v.id = ");
        b.text(id);
    }
    if let Some(since) = q.since {
        b.push(" AND v.last_updated >= ");
        b.int(crate::to_micros(since));
    }
    if let Some(at) = q.at {
        let at = crate::to_micros(at);
        b.push(" AND v.last_updated <= ");
        b.int(at);
        b.push(" AND NOT EXISTS (SELECT 1 FROM resource_version w WHERE w.res_pk = v.res_pk AND w.version > v.version AND w.last_updated <= ");
        b.int(at);
        b.push(")");
    }
}

/// Renumber `?` placeholders as `$1, $2, …` for PostgreSQL. Safe because the compiler never emits a literal
/// question mark: every value is bound.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Filter;

    #[test]
    fn a_list_of_ids_is_one_array_on_postgresql() {
        let q = |ids: &[&str]| SearchQuery {
            resource_type: Some("Observation".into()),
            filters: vec![Filter {
                any_of: ids.iter().map(|id| Predicate::Id((*id).into())).collect(),
            }],
            count: 10,
            ..Default::default()
        };
        let three = compile_search(Dialect::Postgres, &q(&["a", "b", "c"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let five = compile_search(Dialect::Postgres, &q(&["a", "b", "c", "d", "e"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(three.sql.contains("r.id = ANY(?)"), "{}", three.sql);
        assert_eq!(three.sql, five.sql, "one shape whatever the length");
        assert!(three.params.contains(&SqlValue::TextList(vec![
            "a".into(),
            "b".into(),
            "c".into()
        ])));
        // one id, and SQLite, keep the plain form
        let one = compile_search(Dialect::Postgres, &q(&["a"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(!one.sql.contains("ANY"), "{}", one.sql);
        let lite =
            compile_search(Dialect::Sqlite, &q(&["a", "b", "c"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !lite.sql.contains("ANY") && lite.sql.contains(" OR "),
            "{}",
            lite.sql
        );
    }

    #[test]
    fn a_code_on_a_references_candidates_is_checked_in_its_set() {
        let code = |negate: bool| {
            Filter::one(Predicate::Token {
                param: "code".into(),
                system: TokenSystem::Is("http://loinc.org".into()),
                code: "4548-4".into(),
                negate,
            })
        };
        let q = |filters: Vec<Filter>| SearchQuery {
            resource_type: Some("Observation".into()),
            filters,
            sort: vec![SortKey {
                by: SortBy::Param {
                    param: "date".into(),
                    table: IndexTable::Date,
                },
                descending: true,
            }],
            count: 10,
            ..Default::default()
        };
        let patient = Filter::one(Predicate::Reference {
            param: "patient".into(),
            target_type: Some("Patient".into()),
            target_id: "p1".into(),
        });
        for (dialect, probe) in [
            (
                Dialect::Sqlite,
                "EXISTS (SELECT 1 FROM idx_token INDEXED BY idx_token_res WHERE res_pk = xa.res_pk",
            ),
            (
                Dialect::Postgres,
                "(SELECT 1 FROM idx_token WHERE res_pk = xa.res_pk",
            ),
        ] {
            let folded = compile_search(dialect, &q(vec![patient.clone(), code(false)]))
                .unwrap_or_else(|e| panic!("{e}"));
            // the code is tested on the reference row, inside the reference's set, and nowhere else
            assert!(
                folded
                    .sql
                    .contains("r.pk IN (SELECT xa.res_pk FROM idx_reference xa WHERE xa.pid = ?"),
                "{}",
                folded.sql
            );
            assert!(folded.sql.contains(probe), "{}", folded.sql);
            assert_eq!(
                folded.sql.matches("FROM idx_token").count(),
                1,
                "{}",
                folded.sql
            );
            // the same values, bound once each: reference, then code
            assert!(folded.params.contains(&SqlValue::Text("p1".into())));
            // a negated code is not a set member's property: it stays a filter of its own
            let negated = compile_search(dialect, &q(vec![patient.clone(), code(true)]))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!negated.sql.contains("xa.res_pk"), "{}", negated.sql);
        }
        // without a reference to anchor it, a code is a set of its own
        let alone = compile_search(Dialect::Postgres, &q(vec![code(false)]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!alone.sql.contains("xa."), "{}", alone.sql);
    }

    #[test]
    fn only_searches_bounded_to_one_record_are_planned_once() {
        let patient = |ty: Option<&str>| Predicate::Reference {
            param: "patient".into(),
            target_type: ty.map(Into::into),
            target_id: "p1".into(),
        };
        let code = Predicate::Token {
            param: "code".into(),
            system: TokenSystem::Is("http://loinc.org".into()),
            code: "8867-4".into(),
            negate: false,
        };
        let q = |ty: &str, filters: Vec<Predicate>| SearchQuery {
            resource_type: Some(ty.into()),
            filters: filters.into_iter().map(Filter::one).collect(),
            count: 10,
            ..Default::default()
        };
        let once = |query: &SearchQuery| {
            compile_search(Dialect::Postgres, query)
                .unwrap_or_else(|e| panic!("{e}"))
                .plan_once
        };
        let count_once = |query: &SearchQuery| {
            compile_count(Dialect::Postgres, query)
                .unwrap_or_else(|e| panic!("{e}"))
                .plan_once
        };
        // one patient's record: typed, bare (Observation.patient points at Patient or Group), the compartment
        assert!(once(&q("Observation", vec![patient(None), code.clone()])));
        assert!(count_once(&q(
            "Observation",
            vec![patient(None), code.clone()]
        )));
        assert!(once(&q("Observation", vec![patient(Some("Patient"))])));
        assert!(once(&q(
            "Observation",
            vec![Predicate::Compartment {
                target_type: "Patient".into(),
                target_id: "p1".into(),
                params: vec!["subject".into()],
            }]
        )));
        assert!(once(&q("Observation", vec![Predicate::Id("o1".into())])));
        // a clinic, a code, a practitioner's bare id: anything from none to millions of rows
        let clinic = Predicate::Reference {
            param: "service-provider".into(),
            target_type: Some("Organization".into()),
            target_id: "c1".into(),
        };
        assert!(!once(&q("Encounter", vec![clinic])));
        assert!(!once(&q("Observation", vec![code.clone()])));
        assert!(!once(&q(
            "Encounter",
            vec![Predicate::Reference {
                param: "practitioner".into(),
                target_type: None,
                target_id: "d1".into(),
            }]
        )));
        // a chain or `_has` beside the patient: the inner set's size depends on the values
        let chain = Predicate::Chain {
            param: "performer".into(),
            targets: vec![(
                "Practitioner".into(),
                vec![Filter::one(Predicate::Id("d1".into()))],
            )],
        };
        assert!(!once(&q("Observation", vec![patient(None), chain])));
        // the kept counts are one-row lookups whatever the values
        let mut count = q("Observation", vec![code]);
        count.total = true;
        assert!(compile_count(Dialect::Postgres, &count)
            .map(|c| c.plan_once)
            .unwrap_or(false));
        assert!(compile_count(Dialect::Postgres, &q("Observation", vec![]))
            .map(|c| c.plan_once)
            .unwrap_or(false));
    }

    #[test]
    fn a_typed_reference_page_is_read_from_the_reference_index() {
        let q = SearchQuery {
            resource_type: Some("Encounter".into()),
            filters: vec![Filter::one(Predicate::Reference {
                param: "service-provider".into(),
                target_type: Some("Organization".into()),
                target_id: "o1".into(),
            })],
            count: 20,
            ..Default::default()
        };
        let pg = compile_search(Dialect::Postgres, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            pg.sql.contains(
                "FROM (SELECT DISTINCT d.res_pk FROM (SELECT res_pk FROM idx_reference WHERE pid = ?"
            ),
            "{}",
            pg.sql
        );
        assert!(pg.sql.contains("ORDER BY a.res_pk LIMIT 21"), "{}", pg.sql);
        assert!(!pg.sql.contains("r.pk IN"), "{}", pg.sql);
        assert_eq!(pg.sql.matches('?').count(), pg.params.len());
        let lite = compile_search(Dialect::Sqlite, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            lite.sql.contains(
                "FROM idx_reference x INDEXED BY idx_reference_target CROSS JOIN resource r"
            ),
            "{}",
            lite.sql
        );
        assert!(
            lite.sql
                .contains("GROUP BY x.res_pk ORDER BY x.res_pk LIMIT 21"),
            "{}",
            lite.sql
        );
        assert_eq!(lite.sql.matches('?').count(), lite.params.len());
        // untyped references and sorted pages keep the IN form
        let mut untyped = q.clone();
        untyped.filters = vec![Filter::one(Predicate::Reference {
            param: "service-provider".into(),
            target_type: None,
            target_id: "o1".into(),
        })];
        let c = compile_search(Dialect::Postgres, &untyped).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.sql.contains("DISTINCT"), "{}", c.sql);
    }

    #[test]
    fn prefix_bound_increments_last_char() {
        assert_eq!(prefix_upper_bound("smi").as_deref(), Some("smj"));
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn a_count_of_one_code_reads_its_kept_count() {
        let token = |negate| Predicate::Token {
            param: "code".into(),
            system: TokenSystem::Is("http://loinc.org".into()),
            code: "4548-4".into(),
            negate,
        };
        let mut q = SearchQuery {
            resource_type: Some("Observation".into()),
            filters: vec![Filter::one(token(false))],
            ..Default::default()
        };
        let c = compile_count(Dialect::Postgres, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.sql.starts_with(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM token_count WHERE pid = ? AND kind = ? AND hash = ?"
            ),
            "{}",
            c.sql
        );
        // a negated token, or a second filter, needs the resource rows
        q.filters = vec![Filter::one(token(true))];
        let c = compile_count(Dialect::Postgres, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.sql.starts_with("SELECT COUNT(*) FROM resource r"),
            "{}",
            c.sql
        );
        q.filters = vec![Filter::one(token(false)), Filter::one(token(false))];
        let c = compile_count(Dialect::Postgres, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.sql.starts_with("SELECT COUNT(*) FROM resource r"),
            "{}",
            c.sql
        );
    }

    #[test]
    fn search_binds_every_value() {
        let q = SearchQuery {
            resource_type: Some("Observation".into()),
            filters: vec![Filter::one(Predicate::Reference {
                param: "subject".into(),
                target_type: Some("Patient".into()),
                target_id: "x'; DROP TABLE resource; --".into(),
            })],
            count: 10,
            ..Default::default()
        };
        let c = compile_search(Dialect::Postgres, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.sql.contains("DROP"));
        assert_eq!(c.sql.matches('?').count(), c.params.len());
        assert!(numbered_placeholders(&c.sql).contains("$4"));
    }

    #[test]
    fn value_set_membership_and_backward_pages_bind_every_value() {
        let q = SearchQuery {
            resource_type: Some("Observation".into()),
            filters: vec![Filter::one(Predicate::TokenInValueSet {
                param: "code".into(),
                url: "http://x/vs'--".into(),
                version: Some("1".into()),
                negate: true,
            })],
            sort: vec![SortKey {
                by: SortBy::LastUpdated,
                descending: true,
            }],
            after: Some(Cursor {
                pk: 7,
                values: vec![SortValue::Null],
            }),
            backward: true,
            inclusive: true,
            count: 5,
            ..Default::default()
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let c = compile_search(dialect, &q).unwrap_or_else(|e| panic!("{e}"));
            assert!(!c.sql.contains("http://x"));
            assert_eq!(c.sql.matches('?').count(), c.params.len());
            assert!(c.sql.contains("t.pk <= ?"), "{}", c.sql);
            assert!(c.sql.contains("t.pk DESC LIMIT 6) t JOIN"), "{}", c.sql);
            assert!(
                c.sql.ends_with("t.pk DESC"),
                "bodies keep the page's order: {}",
                c.sql
            );
        }
    }
}
