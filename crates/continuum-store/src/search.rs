//! The search AST: what the core asks of a store, already parsed and typed. Parsing of FHIR search URLs lives
//! in `continuum-core`; turning the AST into SQL lives in [`crate::sql`].

use crate::StoredResource;

/// A search over current, non-deleted resources.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// The resource type searched; `None` for a system-wide search.
    pub resource_type: Option<String>,
    /// System-wide search only: restrict to these types (`_type`).
    pub types: Vec<String>,
    /// Every filter must hold (AND); inside a filter any predicate may hold (OR).
    pub filters: Vec<Filter>,
    /// Page size.
    pub count: usize,
    /// Sort keys, most significant first; store order (`pk`) breaks ties and is the order when empty.
    pub sort: Vec<SortKey>,
    /// Keyset cursor: only resources after this position in the query's order (before it when `backward`).
    pub after: Option<Cursor>,
    /// Page backwards from `after`: the rows just before the cursor, nearest first (the reverse of the query's
    /// order); the caller turns the page round. The store's `next` is then the cursor of the page's earliest row.
    pub backward: bool,
    /// The cursor's own position is part of the page (`at or after`, `at or before`): the way back to a page
    /// that was reached from the other direction.
    pub inclusive: bool,
    /// Also count every match.
    pub total: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub any_of: Vec<Predicate>,
}

impl Filter {
    pub fn one(p: Predicate) -> Self {
        Filter { any_of: vec![p] }
    }
}

/// Which system a token value names.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code`.
    Is(String),
    /// `system|`: any code in that system.
    OnlySystem(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    /// Default: starts with, case- and accent-insensitive.
    Start,
    Exact,
    Contains,
}

/// Search prefixes for ordered values (FHIR R4 3.1.1.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl Comparator {
    pub fn parse_prefix(s: &str) -> (Comparator, &str) {
        let table = [
            ("eq", Comparator::Eq),
            ("ne", Comparator::Ne),
            ("gt", Comparator::Gt),
            ("lt", Comparator::Lt),
            ("ge", Comparator::Ge),
            ("le", Comparator::Le),
            ("sa", Comparator::Sa),
            ("eb", Comparator::Eb),
            ("ap", Comparator::Ap),
        ];
        for (p, c) in table {
            if let Some(rest) = s.strip_prefix(p) {
                if rest.starts_with(|ch: char| ch.is_ascii_digit() || ch == '-') {
                    return (c, rest);
                }
            }
        }
        (Comparator::Eq, s)
    }
}

/// One condition on a resource. Parameter codes refer to the searched resource type.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Id(String),
    /// `_id:not`: any other id.
    NotId(String),
    /// `Location.near`: a position within `km` kilometres (great-circle) of `latitude`, `longitude`.
    Near {
        param: String,
        latitude: f64,
        longitude: f64,
        km: f64,
    },
    /// `_lastUpdated`; `low..=high` is the range the search value covers (microseconds).
    LastUpdated {
        cmp: Comparator,
        low: i64,
        high: i64,
    },
    Token {
        param: String,
        system: TokenSystem,
        code: String,
        negate: bool,
    },
    String {
        param: String,
        value: String,
        mode: StringMode,
    },
    Reference {
        param: String,
        target_type: Option<String>,
        target_id: String,
    },
    /// `:text` on a token: the coding's display or the concept's text starts with `value` (normalised).
    TokenText {
        param: String,
        value: String,
    },
    /// `:below` (the stored URI starts with `value`) or `:above` (`value` starts with the stored URI).
    UriPrefix {
        param: String,
        value: String,
        below: bool,
    },
    Date {
        param: String,
        cmp: Comparator,
        low: i64,
        high: i64,
    },
    Uri {
        param: String,
        value: String,
    },
    /// The resource has (`missing: false`) or lacks (`missing: true`) any value for the parameter.
    Missing {
        param: String,
        table: IndexTable,
        missing: bool,
    },
    /// `[prefix]value` on a number parameter; `low..high` is the value's implicit precision range.
    Number {
        param: String,
        cmp: Comparator,
        value: f64,
        low: f64,
        high: f64,
    },
    /// `[prefix]value|system|code` on a quantity parameter (`system` and `code` optional).
    Quantity {
        param: String,
        cmp: Comparator,
        value: f64,
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// The resource belongs to the compartment of `target_type/target_id` through one of `params`.
    Compartment {
        target_type: String,
        target_id: String,
        params: Vec<String>,
    },
    /// Any resource in the compartment of `target_type/target_id` (system-wide, for `$everything`): `members`
    /// lists, per resource type, the parameters that link it; the compartment's own resource is included.
    InCompartment {
        target_type: String,
        target_id: String,
        members: Vec<(String, Vec<String>)>,
    },
    /// Chained parameter: `param` references a resource of one of the `targets` types matching that type's
    /// filters (`subject:Patient.name=x`). Chains nest.
    Chain {
        param: String,
        targets: Vec<(String, Vec<Filter>)>,
    },
    /// A MolecularSequence coordinate (`chromosome-variant-coordinate=1$ge100$lt200`): `param` is the keyed
    /// code of the first component; `start` and `end` (each a [`Predicate::Number`], its `param` unused) must
    /// hold on the same variant or window, whose start and end are one `idx_date` row's `low` and `high`.
    Coordinate {
        param: String,
        start: Box<Predicate>,
        end: Box<Predicate>,
    },
    /// Every predicate holds (the access policy's "in this compartment and not labelled sensitive").
    All(Vec<Predicate>),
    /// Some predicate holds; none when empty (matches nothing).
    Any(Vec<Predicate>),
    /// The resource carries none of these `meta.security` labels (system, code); works without a resource type
    /// too (`$everything`), unlike a negated `_security` token.
    NoSecurityLabel {
        labels: Vec<(String, String)>,
    },
    /// `:in` (`negate`: `:not-in`) on a token parameter: some coding of `param` is (none is) in the ValueSet with
    /// canonical `url` (and `version`) stored in the database, expanded in SQL from the ValueSet's own index
    /// entries (`continuum_fhir::index::VS_CODE`…). A ValueSet that is unknown or cannot be expanded matches
    /// nothing either way (the core refuses such searches first).
    TokenInValueSet {
        param: String,
        url: String,
        version: Option<String>,
        negate: bool,
    },
    /// Reverse chain (`_has:Observation:patient:code=x`): some `source_type` resource references this one through
    /// `param` and matches `filters`.
    Has {
        source_type: String,
        param: String,
        filters: Vec<Filter>,
    },
}

/// The typed index tables of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexTable {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}

impl IndexTable {
    pub fn name(self) -> &'static str {
        match self {
            IndexTable::String => "idx_string",
            IndexTable::Token => "idx_token",
            IndexTable::Reference => "idx_reference",
            IndexTable::Date => "idx_date",
            IndexTable::Number => "idx_number",
            IndexTable::Quantity => "idx_quantity",
            IndexTable::Uri => "idx_uri",
        }
    }
}

/// What a search is sorted by (`_sort`).
#[derive(Debug, Clone, PartialEq)]
pub enum SortBy {
    Id,
    LastUpdated,
    /// A search parameter, through its index table: ascending sorts use a resource's lowest value,
    /// descending sorts its highest (for date ranges, the start resp. the end).
    Param {
        param: String,
        table: IndexTable,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub by: SortBy,
    pub descending: bool,
}

/// The SQL type of a sort key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKind {
    Int,
    Real,
    Text,
}

impl SortBy {
    pub fn kind(&self) -> SortKind {
        match self {
            SortBy::Id => SortKind::Text,
            SortBy::LastUpdated => SortKind::Int,
            SortBy::Param { table, .. } => match table {
                IndexTable::Date => SortKind::Int,
                IndexTable::Number | IndexTable::Quantity => SortKind::Real,
                IndexTable::String
                | IndexTable::Token
                | IndexTable::Reference
                | IndexTable::Uri => SortKind::Text,
            },
        }
    }
}

/// A sort key's value in a row (`Null` when the resource has none: such rows sort last).
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Int(i64),
    Real(f64),
    Text(String),
    Null,
}

/// A position in a result: the last row's sort values and store key. Resources written while a client pages
/// do not shift positions already served.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cursor {
    pub pk: i64,
    pub values: Vec<SortValue>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub matches: Vec<StoredResource>,
    /// Cursor of the next page, when there may be one.
    pub next: Option<Cursor>,
    pub total: Option<u64>,
}
