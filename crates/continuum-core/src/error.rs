//! The core's error type: each variant maps to exactly one HTTP status at the edge.

use continuum_fhir::outcome::Issue;
use continuum_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 400: the request is malformed (bad JSON, wrong resourceType, bad search parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller is known but not permitted this interaction. Never used where a 404 must hide that a
    /// resource exists.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 410: the resource was deleted.
    #[error("{0}")]
    Gone(String),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 412: a version precondition failed, or conditional criteria matched several resources.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 422: the resource is structurally invalid.
    #[error("the resource is not valid FHIR R4")]
    Unprocessable(Vec<Issue>),
    /// 501: a known FHIR feature this server does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// 409: the write kept conflicting with concurrent transactions; the client may retry. Inside a write
    /// closure this variant tells the store to run the closure again.
    #[error("the write conflicted with concurrent changes; retry it")]
    Contention,
    /// 500: internal failure; the detail is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    pub fn status(&self) -> u16 {
        match self {
            CoreError::BadRequest(_) => 400,
            CoreError::Forbidden(_) => 403,
            CoreError::NotFound(_) => 404,
            CoreError::Gone(_) => 410,
            CoreError::Conflict(_) | CoreError::Contention => 409,
            CoreError::PreconditionFailed(_) => 412,
            CoreError::Unprocessable(_) => 422,
            CoreError::NotImplemented(_) => 501,
            CoreError::Internal(_) => 500,
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(t, i) => {
                CoreError::Conflict(format!("{t}/{i} already exists"))
            }
            StoreError::VersionConflict { expected, current } => {
                CoreError::PreconditionFailed(match current {
                    Some(c) => {
                        format!("version {expected} was expected but the current version is {c}")
                    }
                    None => {
                        format!("version {expected} was expected but the resource does not exist")
                    }
                })
            }
            StoreError::NotFound(t, i) => CoreError::NotFound(format!("{t}/{i} is not known")),
            StoreError::Contention => CoreError::Contention,
            StoreError::InvalidQuery(m) => CoreError::BadRequest(m),
            StoreError::InvalidResource(m) => CoreError::BadRequest(m),
            StoreError::Aborted => {
                CoreError::Internal("transaction aborted without a reason".into())
            }
            StoreError::Backend(m) => CoreError::Internal(m),
        }
    }
}
