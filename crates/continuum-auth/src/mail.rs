//! Delivery of the outbox (password-reset links, break-the-glass alerts): SMTP through `lettre` when
//! configured, otherwise one `.eml` file per message in a drop folder (a clinic without a mail relay, the demo,
//! tests). Messages are marked sent only after delivery, so a crash delivers again rather than losing one.

use std::path::PathBuf;

use continuum_store::{format_instant, from_micros, OutboxRow, ResourceStore};

use crate::AuthError;

/// Where mail goes.
pub enum Mailer {
    /// Write `<seq>.eml` files into this folder.
    FileDrop(PathBuf),
    Smtp {
        transport: Box<lettre::SmtpTransport>,
        from: lettre::message::Mailbox,
        /// Recipients that are roles rather than addresses (`security-officer`) mapped to an address.
        aliases: Vec<(String, String)>,
    },
}

impl Mailer {
    /// SMTP from a URL such as `smtps://user:password@mail.example.mil:465` (lettre's URL format).
    pub fn smtp(
        url: &str,
        from: &str,
        aliases: Vec<(String, String)>,
    ) -> Result<Mailer, AuthError> {
        let transport = Box::new(
            lettre::SmtpTransport::from_url(url)
                .map_err(|e| AuthError::Invalid(format!("SMTP URL: {e}")))?
                .build(),
        );
        let from = from
            .parse()
            .map_err(|e| AuthError::Invalid(format!("sender address '{from}': {e}")))?;
        Ok(Mailer::Smtp {
            transport,
            from,
            aliases,
        })
    }

    fn deliver(&self, mail: &OutboxRow) -> Result<(), AuthError> {
        match self {
            Mailer::FileDrop(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    AuthError::Internal(format!("mail folder {}: {e}", dir.display()))
                })?;
                let text = format!(
                    "To: {}\r\nSubject: {}\r\nDate: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
                    mail.recipient,
                    mail.subject,
                    format_instant(from_micros(mail.created)),
                    mail.body
                );
                let path = dir.join(format!("{:010}.eml", mail.seq));
                std::fs::write(&path, text)
                    .map_err(|e| AuthError::Internal(format!("writing {}: {e}", path.display())))
            }
            Mailer::Smtp {
                transport,
                from,
                aliases,
            } => {
                use lettre::Transport;
                let to = aliases
                    .iter()
                    .find(|(alias, _)| *alias == mail.recipient)
                    .map_or(mail.recipient.as_str(), |(_, addr)| addr.as_str());
                let to: lettre::message::Mailbox = to.parse().map_err(|e| {
                    AuthError::Invalid(format!("recipient '{}': {e}", mail.recipient))
                })?;
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .body(mail.body.clone())
                    .map_err(|e| AuthError::Internal(format!("building mail: {e}")))?;
                transport
                    .send(&message)
                    .map(|_| ())
                    .map_err(|e| AuthError::Internal(format!("SMTP: {e}")))
            }
        }
    }
}

/// Deliver what is waiting, oldest first; returns how many went out. A message that fails stays pending (and
/// stops this round, so order is kept).
pub fn deliver_pending(
    store: &dyn ResourceStore,
    mailer: &Mailer,
    now_us: i64,
) -> Result<usize, AuthError> {
    let mut sent = 0;
    for mail in store.accounts().pending_mail(100)? {
        if let Err(e) = mailer.deliver(&mail) {
            tracing::warn!(error = %e, seq = mail.seq, "mail delivery failed; will retry");
            break;
        }
        store.accounts().mark_mail_sent(mail.seq, now_us)?;
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_drop_writes_one_message_per_file() {
        let dir = std::env::temp_dir().join(format!("continuum-mail-{}", uuid::Uuid::new_v4()));
        let m = Mailer::FileDrop(dir.clone());
        m.deliver(&OutboxRow {
            seq: 7,
            created: 0,
            recipient: "security-officer".into(),
            subject: "Break-the-glass".into(),
            body: "synthetic".into(),
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.join("0000000007.eml")).unwrap();
        assert!(text.starts_with("To: security-officer\r\nSubject: Break-the-glass\r\n"));
        assert!(text.ends_with("synthetic"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
