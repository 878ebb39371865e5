//! OperationOutcome: the one shape every FHIR error takes on the wire.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// The subset of the R4 `issue-type` value set the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Conflict,
    Exception,
    Timeout,
    TooCostly,
    Informational,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::Invariant => "invariant",
            Self::Security => "security",
            Self::Login => "login",
            Self::Forbidden => "forbidden",
            Self::Processing => "processing",
            Self::NotSupported => "not-supported",
            Self::Duplicate => "duplicate",
            Self::MultipleMatches => "multiple-matches",
            Self::NotFound => "not-found",
            Self::Deleted => "deleted",
            Self::TooLong => "too-long",
            Self::CodeInvalid => "code-invalid",
            Self::Conflict => "conflict",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::TooCostly => "too-costly",
            Self::Informational => "informational",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    pub diagnostics: String,
    /// FHIRPath-like location of the problem (`Patient.birthDate`), when known.
    pub expression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::single(IssueSeverity::Error, code, diagnostics)
    }

    pub fn single(
        severity: IssueSeverity,
        code: IssueType,
        diagnostics: impl Into<String>,
    ) -> Self {
        Self {
            issues: vec![Issue {
                severity,
                code,
                diagnostics: diagnostics.into(),
                expression: None,
            }],
        }
    }

    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = self
            .issues
            .iter()
            .map(|i| {
                let mut v = json!({
                    "severity": i.severity.code(),
                    "code": i.code.code(),
                    "diagnostics": i.diagnostics,
                });
                if let (Some(expr), Some(obj)) = (&i.expression, v.as_object_mut()) {
                    obj.insert("expression".into(), json!([expr]));
                }
                v
            })
            .collect();
        let issues = if issues.is_empty() {
            vec![json!({"severity": "information", "code": "informational", "diagnostics": "ok"})]
        } else {
            issues
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}
