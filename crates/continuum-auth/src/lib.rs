//! Identity for Continuum: who is calling.
//!
//! Owns: accounts (staff, patients and system integrations, linked to FHIR resources), password rules and
//! hashing, TOTP second factors, smart-card (X.509 client certificate) verification, login with lockout and
//! throttling, and bearer tokens. Does not own: what a caller may see (the access policy lives in
//! `continuum-core`), HTTP (the web crate), storage (the `AccountStore` port of `continuum-store`).

pub mod account;
pub mod cert;
pub mod mail;
pub mod oauth;
pub mod password;
pub mod secret;
pub mod service;
pub mod totp;

pub use account::{Account, AccountKind, BreakGlass};
pub use service::{Auth, LoginError, LoginPolicy, Session, SessionData, SessionPolicy};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Password(password::PasswordProblem),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] continuum_store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}
