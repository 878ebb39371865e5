//! Storage of OAuth 2 / SMART clients and of the authorization server's own signing keys: the state of
//! `continuum-auth`'s OAuth service, kept in the same database as the record so that several stateless servers
//! share it (a token signed by one server verifies on every other).
//!
//! A client's registration (name, redirect URIs, scopes, how it authenticates, revoked or not) lives in a JSON
//! document the auth crate owns; a server key's document holds the private key. Neither is a FHIR resource:
//! they never leave through the API. One-time codes, refresh tokens and used assertion ids are ordinary
//! [`crate::TokenRow`]s of the account store.

use crate::Result;

/// A registered client. `body` is the auth crate's JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    /// The OAuth `client_id`; unique.
    pub client_id: String,
    /// Registered at (µs since the Unix epoch).
    pub created: i64,
    /// Last changed at (µs).
    pub updated: i64,
    pub body: Vec<u8>,
}

/// A key of the server's, by name (e.g. the access-token signing key). `body` is the auth crate's document.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerKeyRow {
    pub name: String,
    pub created: i64,
    pub body: Vec<u8>,
}

/// The client port. Every method is one atomic database transaction.
pub trait ClientStore: Send + Sync {
    /// [`crate::StoreError::AlreadyExists`] (`"Client"`, client_id) when the client id is taken.
    fn create_client(&self, client: &ClientRow) -> Result<()>;
    /// Replace `updated` and `body` of an existing client (not `created`); `NotFound` otherwise.
    fn update_client(&self, client: &ClientRow) -> Result<()>;
    fn client(&self, client_id: &str) -> Result<Option<ClientRow>>;
    /// Clients in client-id order (byte order), after `after` (paging for administrators).
    fn list_clients(&self, after: Option<&str>, limit: usize) -> Result<Vec<ClientRow>>;
    fn server_key(&self, name: &str) -> Result<Option<ServerKeyRow>>;
    /// The key named `candidate.name`, storing `candidate` first when there is none: of several servers
    /// racing to create it, every one gets the same (first stored) key.
    fn server_key_or_insert(&self, candidate: &ServerKeyRow) -> Result<ServerKeyRow>;
}
