//! Accounts: staff, patients and system integrations, each linked to the FHIR resource that is them
//! (`Practitioner`, `Patient`), with their credentials. Stored as a JSON document through the store's
//! `AccountStore` port; never a FHIR resource, so it never leaves through the API.

use continuum_core::access::{Principal, PrincipalKind, ProxyGrant};
use continuum_store::AccountRow;
use serde::{Deserialize, Serialize};

use crate::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountKind {
    Staff,
    Patient,
    /// A system integration (backend service, import job): unrestricted, always audited under its own name.
    Service,
}

/// The staff roles the default policy knows (`policy/default.json` of `continuum-core`).
pub const STAFF_ROLES: &[&str] = &[
    "physician",
    "nurse",
    "medic",
    "dentist",
    "pharmacist",
    "scheduler",
    "readiness-coordinator",
    "public-health-officer",
    "administrator",
];

/// Patient account levels: *basic* sees demographics and appointments, *premium* (identity-proofed) the full
/// record and may message and book.
pub const LEVELS: &[&str] = &["basic", "premium"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub username: String,
    #[serde(skip)]
    pub cert_id: Option<String>,
    #[serde(skip)]
    pub locked_until: Option<i64>,
    pub kind: AccountKind,
    pub display_name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// `Practitioner` id (staff).
    #[serde(default)]
    pub practitioner: Option<String>,
    /// `Patient` id (patients).
    #[serde(default)]
    pub patient: Option<String>,
    /// `basic` or `premium` (patients).
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub proxies: Vec<ProxyGrant>,
    /// Argon2id PHC string.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Base32 TOTP secret, once enrolled.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Last TOTP time step accepted (a code is never accepted twice).
    #[serde(default)]
    pub totp_last_step: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Records opened with break-the-glass (staff outside the care relationship), each time-limited.
    #[serde(default)]
    pub break_glass: Vec<BreakGlass>,
    /// A demo account (synthetic data only): `continuum admin totp-code` may print its current code.
    #[serde(default)]
    pub demo: bool,
}

/// Emergency access to one patient's record: a stated reason, an expiry, audited and alerted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub patient: String,
    pub reason: String,
    /// µs since the epoch.
    pub expires: i64,
}

impl Account {
    pub fn new(kind: AccountKind, username: &str, display_name: &str) -> Account {
        Account {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_lowercase(),
            cert_id: None,
            locked_until: None,
            kind,
            display_name: display_name.to_string(),
            roles: Vec::new(),
            practitioner: None,
            patient: None,
            level: None,
            proxies: Vec::new(),
            password_hash: None,
            totp_secret: None,
            totp_last_step: None,
            email: None,
            disabled: false,
            break_glass: Vec::new(),
            demo: false,
        }
    }

    pub fn from_row(row: &AccountRow) -> Result<Account, AuthError> {
        let mut a: Account = serde_json::from_slice(&row.body)
            .map_err(|e| AuthError::Internal(format!("account {} unreadable: {e}", row.id)))?;
        a.id = row.id.clone();
        a.username = row.username.clone();
        a.cert_id = row.cert_id.clone();
        a.locked_until = row.locked_until;
        Ok(a)
    }

    pub fn to_row(&self) -> Result<AccountRow, AuthError> {
        Ok(AccountRow {
            id: self.id.clone(),
            username: self.username.clone(),
            cert_id: self.cert_id.clone(),
            locked_until: self.locked_until,
            body: serde_json::to_vec(self).map_err(|e| AuthError::Internal(e.to_string()))?,
        })
    }

    /// Check the fields fit the kind (roles known, links present).
    pub fn validate(&self) -> Result<(), AuthError> {
        let bad = |m: String| Err(AuthError::Invalid(m));
        if self.username.is_empty()
            || self.username.len() > 64
            || !self
                .username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return bad(format!(
                "'{}' is not a valid user name (letters, digits, . _ - @; at most 64)",
                self.username
            ));
        }
        match self.kind {
            AccountKind::Staff => {
                if self.roles.is_empty() {
                    return bad("a staff account needs at least one role".into());
                }
                if let Some(r) = self
                    .roles
                    .iter()
                    .find(|r| !STAFF_ROLES.contains(&r.as_str()))
                {
                    return bad(format!(
                        "unknown role '{r}' (one of: {})",
                        STAFF_ROLES.join(", ")
                    ));
                }
            }
            AccountKind::Patient => {
                let level = self.level.as_deref().unwrap_or("");
                if !LEVELS.contains(&level) {
                    return bad(format!("unknown level '{level}' (basic or premium)"));
                }
            }
            AccountKind::Service => {}
        }
        Ok(())
    }

    /// Who this account is to the access policy.
    pub fn principal(&self, address: Option<String>) -> Principal {
        let kind = match self.kind {
            AccountKind::Service => PrincipalKind::System,
            AccountKind::Staff => {
                let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
                PrincipalKind::Staff {
                    roles: self.roles.clone(),
                    practitioner: self.practitioner.clone(),
                    break_glass: self
                        .break_glass
                        .iter()
                        .filter(|b| b.expires > now)
                        .map(|b| b.patient.clone())
                        .collect(),
                }
            }
            AccountKind::Patient => PrincipalKind::Patient {
                patient: self.patient.clone(),
                level: self.level.clone().unwrap_or_else(|| "basic".into()),
                proxies: self.proxies.clone(),
            },
        };
        Principal {
            account_id: self.id.clone(),
            username: self.username.clone(),
            kind,
            address,
            token_scopes: None,
        }
    }
}
