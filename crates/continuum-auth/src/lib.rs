//! Identity for Continuum: who is calling.
//!
//! Owns: accounts (staff and patients, linked to FHIR resources), password rules and hashing, TOTP second
//! factors, smart-card (X.509 client certificate) verification, login with lockout, sessions and bearer
//! tokens. Does not own: what a caller may see (the access policy lives in `continuum-core`), HTTP (the web
//! crate), storage (the `AccountStore` port of `continuum-store`).

pub mod cert;
pub mod password;
pub mod secret;
pub mod totp;
