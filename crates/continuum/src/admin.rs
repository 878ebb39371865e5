//! `continuum admin …` (accounts, tokens, proxy grants, unlock) and `continuum audit …` (verify the hash
//! chain, reports by user, patient and period).

use std::io::Read;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use continuum_auth::{Account, AccountKind, Auth, LoginPolicy};
use continuum_core::access::{ProxyBasis, ProxyGrant};
use continuum_store::{audit, AuditQuery, ResourceStore};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account. The password is read from standard input (one line) with --password-stdin, or from
    /// CONTINUUM_PASSWORD; service accounts need none (they use tokens).
    CreateUser {
        #[arg(long)]
        username: String,
        /// staff, patient or service (a system integration: unrestricted, audited under its name).
        #[arg(long, default_value = "staff")]
        kind: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Staff role (repeatable): physician, nurse, medic, dentist, pharmacist, scheduler,
        /// readiness-coordinator, public-health-officer, administrator.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The Practitioner id of a staff member.
        #[arg(long)]
        practitioner: Option<String>,
        /// The Patient id of a patient account.
        #[arg(long)]
        patient: Option<String>,
        /// basic or premium (patients).
        #[arg(long, default_value = "premium")]
        level: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Issue an API bearer token for an account and print it (only its hash is stored).
    CreateToken {
        #[arg(long)]
        username: String,
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Let an account act for a patient: a parent (the age bands decide what they see), an adult's grant, or a
    /// legal representative.
    GrantProxy {
        #[arg(long)]
        username: String,
        #[arg(long)]
        patient: String,
        /// parent, granted or legal-representative.
        #[arg(long, default_value = "parent")]
        basis: String,
        /// Last day of the grant (YYYY-MM-DD); open-ended when absent.
        #[arg(long)]
        until: Option<String>,
    },
    /// Revoke an account's proxy access to a patient.
    RevokeProxy {
        #[arg(long)]
        username: String,
        #[arg(long)]
        patient: String,
    },
    /// Unlock an account locked by failed logins.
    Unlock {
        #[arg(long)]
        username: String,
    },
    /// Print the current 6-digit TOTP code of a demo account (demo accounts only: they hold synthetic data).
    TotpCode {
        #[arg(long)]
        username: String,
    },
    /// Register an OAuth 2 / SMART app: a public app (PKCE), a backend service or confidential app with a
    /// JWKS (private_key_jwt, RS384/ES384), or a development client with a secret (printed once). With
    /// --revoke, revoke the client instead: it gets no more tokens and every token it holds stops working.
    CreateClient {
        #[arg(long)]
        client_id: String,
        /// Display name shown on the consent page.
        #[arg(long)]
        name: Option<String>,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// The most the client may be granted (repeatable): patient/Observation.rs, user/*.rs, system/*.rs,
        /// launch, launch/patient, offline_access...
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long, conflicts_with_all = ["jwks_file", "dev_secret"])]
        public: bool,
        /// The client's public keys (a JWKS JSON file with RS384 or ES384 keys, each with a kid).
        #[arg(long, conflicts_with = "dev_secret")]
        jwks_file: Option<std::path::PathBuf>,
        /// A client secret for local development only (client_secret_basic).
        #[arg(long)]
        dev_secret: bool,
        #[arg(long, conflicts_with_all = ["public", "jwks_file", "dev_secret"])]
        revoke: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Seal pending rows into the hash chain, then check the whole chain; names every altered, removed or
    /// unchained row and exits non-zero if there is one.
    Verify,
    /// Audit events, newest first, filtered by user (account id or user name), patient and period.
    Report {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        patient: Option<String>,
        /// From this day (YYYY-MM-DD, UTC), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Until this day (YYYY-MM-DD, UTC), inclusive.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

fn day_us(d: &str, end: bool) -> Result<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(d, &fmt).with_context(|| format!("'{d}' is not YYYY-MM-DD"))?;
    let date = if end {
        date.next_day()
            .ok_or_else(|| anyhow!("date out of range"))?
    } else {
        date
    };
    Ok(continuum_store::to_micros(date.midnight().assume_utc()))
}

fn read_password(from_stdin: bool) -> Result<Option<String>> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(Some(s.lines().next().unwrap_or("").to_string()));
    }
    Ok(std::env::var("CONTINUUM_PASSWORD").ok())
}

pub fn run_admin(store: Arc<dyn ResourceStore>, cmd: AdminCommand) -> Result<()> {
    let auth = Auth::new(store.clone(), LoginPolicy::default());
    let account = |username: &str| -> Result<Account> {
        auth.by_username(username)?
            .ok_or_else(|| anyhow!("no account '{username}'"))
    };
    match cmd {
        AdminCommand::CreateUser {
            username,
            kind,
            name,
            roles,
            practitioner,
            patient,
            level,
            password_stdin,
        } => {
            let kind = match kind.as_str() {
                "staff" => AccountKind::Staff,
                "patient" => AccountKind::Patient,
                "service" => AccountKind::Service,
                k => bail!("unknown kind '{k}': staff, patient or service"),
            };
            let mut a = Account::new(kind, &username, &name);
            a.roles = roles;
            a.practitioner = practitioner;
            a.patient = patient;
            if kind == AccountKind::Patient {
                a.level = Some(level);
            }
            let password = read_password(password_stdin)?;
            if password.is_none() && kind != AccountKind::Service {
                eprintln!("note: no password given (--password-stdin or CONTINUUM_PASSWORD): the account can only use tokens until one is set");
            }
            let a = auth.create(a, password.as_deref())?;
            println!(
                "created {} account '{}' ({})",
                kind_name(a.kind),
                a.username,
                a.id
            );
        }
        AdminCommand::CreateToken { username, days } => {
            let a = account(&username)?;
            let token = auth.issue_token(&a.id, "api", now_us(), days * 86_400, b"{}")?;
            println!("{token}");
        }
        AdminCommand::GrantProxy {
            username,
            patient,
            basis,
            until,
        } => {
            let mut a = account(&username)?;
            let basis = match basis.as_str() {
                "parent" => ProxyBasis::Parent,
                "granted" => ProxyBasis::Granted,
                "legal-representative" => ProxyBasis::LegalRepresentative,
                b => bail!("unknown basis '{b}': parent, granted or legal-representative"),
            };
            let expires = until.as_deref().map(|d| day_us(d, true)).transpose()?;
            a.proxies.retain(|g| g.patient != patient);
            a.proxies.push(ProxyGrant {
                patient: patient.clone(),
                basis,
                expires,
                revoked: false,
            });
            auth.update(&a)?;
            println!("'{}' may now act for Patient/{patient}", a.username);
        }
        AdminCommand::RevokeProxy { username, patient } => {
            let mut a = account(&username)?;
            let mut found = false;
            for g in a.proxies.iter_mut().filter(|g| g.patient == patient) {
                g.revoked = true;
                found = true;
            }
            if !found {
                bail!("'{username}' has no proxy access to Patient/{patient}");
            }
            auth.update(&a)?;
            println!("revoked '{}' acting for Patient/{patient}", a.username);
        }
        AdminCommand::Unlock { username } => {
            auth.unlock(&username)?;
            println!("unlocked '{username}'");
        }
        AdminCommand::TotpCode { username } => {
            let a = account(&username)?;
            if !a.demo {
                bail!("'{username}' is not a demo account: its codes come only from its owner's authenticator");
            }
            let secret = a
                .totp_secret
                .as_deref()
                .and_then(continuum_auth::totp::from_base32)
                .ok_or_else(|| anyhow!("'{username}' has no TOTP second factor"))?;
            println!(
                "{}",
                continuum_auth::totp::code_at(&secret, now_us() / 1_000_000)
            );
        }
        AdminCommand::CreateClient {
            client_id,
            name,
            redirect_uris,
            scopes,
            public,
            jwks_file,
            dev_secret,
            revoke,
        } => create_client(
            &store,
            client_id,
            name,
            redirect_uris,
            scopes,
            (public, jwks_file, dev_secret, revoke),
        )?,
    }
    Ok(())
}

fn create_client(
    store: &Arc<dyn ResourceStore>,
    client_id: String,
    name: Option<String>,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
    (public, jwks_file, dev_secret, revoke): (bool, Option<std::path::PathBuf>, bool, bool),
) -> Result<()> {
    use continuum_auth::oauth::{Client, ClientAuth, OAuth};
    let oauth = OAuth::new(store.clone());
    if revoke {
        oauth.revoke_client(&client_id, now_us())?;
        println!("revoked client '{client_id}': its tokens no longer work");
        return Ok(());
    }
    let auth = if let Some(path) = jwks_file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let jwks: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        ClientAuth::PrivateKeyJwt { jwks }
    } else if dev_secret {
        ClientAuth::DevSecret {
            secret_hash: String::new(),
        }
    } else if public {
        ClientAuth::Public
    } else {
        bail!("say how the client authenticates: --public, --jwks-file FILE or --dev-secret");
    };
    let client = Client {
        client_id: client_id.clone(),
        name: name.ok_or_else(|| anyhow!("--name is required"))?,
        redirect_uris,
        scopes,
        auth,
        revoked: false,
    };
    let secret = oauth.register(client, now_us())?;
    println!("registered client '{client_id}'");
    if let Some(s) = secret {
        eprintln!("development client secret (shown once; for local development only):");
        println!("{s}");
    }
    Ok(())
}

fn kind_name(k: AccountKind) -> &'static str {
    match k {
        AccountKind::Staff => "staff",
        AccountKind::Patient => "patient",
        AccountKind::Service => "service",
    }
}

pub fn run_audit(store: Arc<dyn ResourceStore>, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify => {
            let mut sealed = 0;
            loop {
                let n = store.audit().seal_audit(10_000)?;
                sealed += n;
                if n == 0 {
                    break;
                }
            }
            let report = audit::verify(store.audit(), 10_000)?;
            println!(
                "sealed {sealed} new rows; checked {} links of the audit chain",
                report.links
            );
            if report.problems.is_empty() {
                println!("the audit log is intact");
                Ok(())
            } else {
                for p in &report.problems {
                    println!("TAMPERED: {p}");
                }
                bail!("{} problems in the audit log", report.problems.len())
            }
        }
        AuditCommand::Report {
            user,
            patient,
            from,
            to,
            limit,
        } => {
            let agent = match user {
                None => None,
                Some(u) => {
                    let auth = Auth::new(store.clone(), LoginPolicy::default());
                    Some(match auth.by_username(&u)? {
                        Some(a) => a.id,
                        None => u,
                    })
                }
            };
            let q = AuditQuery {
                agent,
                patient,
                from: from.as_deref().map(|d| day_us(d, false)).transpose()?,
                to: to.as_deref().map(|d| day_us(d, true)).transpose()?,
                before_seq: None,
                limit,
            };
            let rows = store.audit().audit_search(&q)?;
            println!("seq\trecorded\tagent\tpatient\taction\tsubtype\toutcome");
            for r in &rows {
                let rec = &r.record;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.seq,
                    continuum_store::format_instant(continuum_store::from_micros(rec.recorded)),
                    rec.agent,
                    rec.patient.as_deref().unwrap_or("-"),
                    rec.action,
                    rec.subtype,
                    rec.outcome
                );
            }
            println!("({} events)", rows.len());
            Ok(())
        }
    }
}
