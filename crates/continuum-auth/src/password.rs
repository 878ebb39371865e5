//! Passwords: the rules for a new one (NIST SP 800-63B §3.1.1.2) and Argon2id hashing.
//!
//! NIST asks for length, a blocklist of common or guessable passwords and no composition rules ("one digit, one
//! symbol…"), which push people to predictable patterns. Guessability is judged by zxcvbn, whose dictionaries
//! cover common passwords, words, names and keyboard patterns.

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

/// Minimum length, in Unicode characters, when the account also has a second factor (NIST: 8).
const MIN_CHARS_WITH_SECOND_FACTOR: usize = 8;
/// Minimum length when the password is the only factor (NIST: 15).
const MIN_CHARS_SINGLE_FACTOR: usize = 15;
/// Maximum length; NIST asks that at least 64 be allowed.
const MAX_CHARS: usize = 64;
/// Shorter identity strings ("Li", "Ann") are too likely to occur by chance to refuse a password for them.
const MIN_IDENTITY_CHARS: usize = 4;

/// Argon2id memory cost in KiB (OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1).
const M_COST_KIB: u32 = 19_456;
/// Argon2id passes over memory.
const T_COST: u32 = 2;
/// Argon2id lanes.
const P_COST: u32 = 1;

/// A fixed Argon2id hash with the parameters above (of a random password nobody knows), verified against when
/// the user is unknown so that the answer takes as long as for a real account. A test keeps its parameters in
/// step with the constants.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$MV4DD5bAK8Hr9BRL/fwrdw$OpA0kSjZ0ly5fzNOtdlAmiW+T41WabMZKVEwHuF+ve8";

/// Why a new password is refused; the message is meant for the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("use at least {min} characters")]
    TooShort { min: usize },
    #[error("use at most {max} characters")]
    TooLong { max: usize },
    /// `hint` is empty or ": " followed by zxcvbn's feedback.
    #[error("this password is too common or too easy to guess{}", hint)]
    Weak { hint: String },
    #[error("the password must not contain your user name or name")]
    ContainsIdentity,
}

/// Hashing could not be done (bad parameters or no OS randomness): a server fault, not the user's.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks a new password against NIST SP 800-63B: 8 characters at least with a second factor, 15 without, 64
/// at most; not guessable (zxcvbn score below 3); not containing the user's `identity` (user name, names) of 4
/// characters or more, compared case-insensitively. Multi-word identity strings ("Mary Ann Smith") are checked
/// word by word too.
pub fn check_new_password(
    password: &str,
    has_second_factor: bool,
    identity: &[&str],
) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    let min = if has_second_factor {
        MIN_CHARS_WITH_SECOND_FACTOR
    } else {
        MIN_CHARS_SINGLE_FACTOR
    };
    if chars < min {
        return Err(PasswordProblem::TooShort { min });
    }
    if chars > MAX_CHARS {
        return Err(PasswordProblem::TooLong { max: MAX_CHARS });
    }

    let terms = identity_terms(identity);
    let lower = password.to_lowercase();
    if terms
        .iter()
        .any(|term| term.chars().count() >= MIN_IDENTITY_CHARS && lower.contains(term.as_str()))
    {
        return Err(PasswordProblem::ContainsIdentity);
    }

    let inputs: Vec<&str> = terms.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if entropy.score() < zxcvbn::Score::Three {
        let hint = entropy
            .feedback()
            .map(|feedback| feedback.to_string().trim().to_owned())
            .filter(|text| !text.is_empty())
            .map(|text| format!(": {text}"))
            .unwrap_or_default();
        return Err(PasswordProblem::Weak { hint });
    }
    Ok(())
}

/// The identity strings, lower-cased and trimmed, plus each word of the multi-word ones.
fn identity_terms(identity: &[&str]) -> Vec<String> {
    let mut terms = Vec::new();
    for item in identity {
        let item = item.trim().to_lowercase();
        if item.is_empty() {
            continue;
        }
        let words: Vec<&str> = item.split_whitespace().collect();
        if words.len() > 1 {
            terms.extend(words.into_iter().map(str::to_owned));
        }
        terms.push(item);
    }
    terms
}

/// Hashes a password with Argon2id (m=19456 KiB, t=2, p=1) and a random 16-byte salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`, using the algorithm and parameters recorded in it (so
/// hashes made with older parameters keep working). `false` for a malformed or unsupported hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Does the work of one `verify_password`, against a fixed dummy hash, so that a login for an unknown user
/// takes as long as one for a known user and the timing does not reveal which user names exist.
pub fn burn_verify_time(password: &str) {
    std::hint::black_box(verify_password(std::hint::black_box(password), DUMMY_PHC));
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHash;

    fn strong() -> &'static str {
        // Random words and digits, no dictionary phrase: zxcvbn scores it 4.
        "vortex Plinth 7 gandalf-quiche 93"
    }

    #[test]
    fn minimum_length_depends_on_second_factor() {
        // 7 and 8 characters with a second factor. zxcvbn estimates n random characters at 10^n guesses, and
        // score 3 needs more than 10^8, so 8 characters pass the length rule but are always judged weak; 9 pass.
        assert_eq!(
            check_new_password("kQ7#vZ2", true, &[]),
            Err(PasswordProblem::TooShort { min: 8 })
        );
        assert!(matches!(
            check_new_password("kQ7#vZ2!", true, &[]),
            Err(PasswordProblem::Weak { .. })
        ));
        assert_eq!(check_new_password("kQ7#vZ2!m", true, &[]), Ok(()));
        // 14 and 15 characters without one.
        assert_eq!(
            check_new_password("kQ7#vZ2!mW4pLx", false, &[]),
            Err(PasswordProblem::TooShort { min: 15 })
        );
        assert_eq!(check_new_password("kQ7#vZ2!mW4pLx9", false, &[]), Ok(()));
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // 8 characters, 16 bytes in UTF-8.
        let greek = "κλμνξπρσ";
        assert_eq!(greek.chars().count(), 8);
        assert_ne!(
            check_new_password(greek, true, &[]),
            Err(PasswordProblem::TooShort { min: 8 })
        );
        // 7 characters but 21 bytes: still too short.
        assert_eq!(
            check_new_password("東京大阪名古屋", true, &[]),
            Err(PasswordProblem::TooShort { min: 8 })
        );
    }

    #[test]
    fn maximum_length_is_64_characters() {
        let base = "vortex Plinth 7 gandalf-quiche 93 ";
        let at_max: String = base.repeat(2).chars().take(64).collect();
        assert_eq!(at_max.chars().count(), 64);
        assert_eq!(check_new_password(&at_max, false, &[]), Ok(()));
        let over: String = base.repeat(2).chars().take(65).collect();
        assert_eq!(
            check_new_password(&over, false, &[]),
            Err(PasswordProblem::TooLong { max: 64 })
        );
        // 64 multi-byte characters are allowed.
        let wide: String = "ж🙂ß".repeat(22).chars().take(64).collect();
        assert!(!matches!(
            check_new_password(&wide, false, &[]),
            Err(PasswordProblem::TooLong { .. } | PasswordProblem::TooShort { .. })
        ));
    }

    #[test]
    fn common_and_guessable_passwords_are_weak() {
        for weak in [
            "password1234567",
            "Password1234567",
            "123456789012345",
            "qwertyuiopasdfg",
            "aaaaaaaaaaaaaaaa",
            "iloveyouiloveyou",
            "abcdefghijklmnop",
        ] {
            assert!(
                matches!(
                    check_new_password(weak, false, &[]),
                    Err(PasswordProblem::Weak { .. })
                ),
                "{weak}"
            );
        }
        for weak in ["password", "12345678", "football", "Passw0rd!"] {
            assert!(
                matches!(
                    check_new_password(weak, true, &[]),
                    Err(PasswordProblem::Weak { .. })
                ),
                "{weak}"
            );
        }
    }

    #[test]
    fn weak_message_carries_zxcvbn_feedback() {
        let Err(problem) = check_new_password("password1234567", false, &[]) else {
            panic!("password1234567 accepted");
        };
        let message = problem.to_string();
        assert!(
            message.starts_with("this password is too common or too easy to guess: "),
            "{message}"
        );
        assert!(message.len() > "this password is too common or too easy to guess: ".len());
        let bare = PasswordProblem::Weak {
            hint: String::new(),
        };
        assert_eq!(
            bare.to_string(),
            "this password is too common or too easy to guess"
        );
    }

    #[test]
    fn well_known_passphrases_are_judged_by_zxcvbn() {
        // The famous xkcd phrase is four common words; zxcvbn estimates more than 10^10 guesses and accepts it.
        // What it refuses are phrases of very common words and repeated words.
        assert_eq!(
            check_new_password("correcthorsebatterystaple", false, &[]),
            Ok(())
        );
        for weak in [
            "iloveyouiloveyouiloveyou",
            "letmeinletmeinletmein",
            "passwordpassword",
        ] {
            assert!(
                matches!(
                    check_new_password(weak, false, &[]),
                    Err(PasswordProblem::Weak { .. })
                ),
                "{weak}"
            );
        }
        assert_eq!(check_new_password(strong(), false, &[]), Ok(()));
    }

    #[test]
    fn identity_may_not_appear_in_the_password() {
        let identity = ["mjohnson", "Mary Ann Johnson"];
        for bad in [
            "xX-mjohnson-Xx-2024!",
            "MJOHNSON is my name ok",
            "vortex Plinth Johnson 93",
            "vortex Plinth MARY ANN JOHNSON",
        ] {
            assert_eq!(
                check_new_password(bad, false, &identity),
                Err(PasswordProblem::ContainsIdentity),
                "{bad}"
            );
        }
        // Words of fewer than 4 characters ("Ann") are not checked on their own.
        assert_eq!(
            check_new_password("vortex Plinth 7 ann gandalf-quiche", false, &identity),
            Ok(())
        );
        // Case-insensitive beyond ASCII.
        assert_eq!(
            check_new_password("vortex MÜLLER gandalf 93 quiche", false, &["Müller"]),
            Err(PasswordProblem::ContainsIdentity)
        );
        assert_eq!(
            check_new_password(strong(), false, &["", "  ", "li"]),
            Ok(())
        );
    }

    #[test]
    fn identity_is_a_zxcvbn_input() {
        // "zebulon" alone is not a dictionary word for zxcvbn, but as a user input it is guessable.
        let password = "zebulonzebulon";
        assert_eq!(identity_terms(&["Zebulon"]), vec!["zebulon".to_owned()]);
        let with = zxcvbn::zxcvbn(password, &["zebulon"]).guesses();
        let without = zxcvbn::zxcvbn(password, &[]).guesses();
        assert!(with < without, "{with} vs {without}");
    }

    #[test]
    fn dummy_hash_has_the_current_parameters() {
        let parsed = PasswordHash::new(DUMMY_PHC).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$YmHZb/6yjWyo7pBEmsyLCw$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$RMRwE1vk2c3vRjWu4x9RNsuoQOYNqvWl6QBuK7gx9bY",
            "$bcrypt$v=19$m=19456,t=2,p=1$YmHZb/6yjWyo7pBEmsyLCw$RMRwE1vk2c3vRjWu4x9RNsuoQOYNqvWl6QBuK7gx9bY",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password", bad), "{bad:?}");
        }
    }

    /// The Argon2 calls of the suite (each is ~20 MiB of work) are kept together here: two hashes, three verifies.
    #[test]
    fn hash_and_verify_round_trip_with_argon2id_parameters() {
        let password = "vortex Plinth 7 gandalf-quiche 93 ünïcödé";
        let phc = hash_password(password).unwrap();

        // $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
        let fields: Vec<&str> = phc.split('$').collect();
        assert_eq!(fields.len(), 6, "{phc}");
        assert_eq!(&fields[1..4], ["argon2id", "v=19", "m=19456,t=2,p=1"]);
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(0x13));
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
        assert_eq!(parsed.salt.unwrap().len(), 16);
        assert_eq!(parsed.hash.unwrap().len(), 32);

        assert!(verify_password(password, &phc));
        assert!(!verify_password(
            "vortex Plinth 7 gandalf-quiche 93 unicode",
            &phc
        ));
        // A dummy verification runs and returns without panicking.
        burn_verify_time(password);

        // The same password hashes differently each time (random salt).
        let again = hash_password(password).unwrap();
        assert_ne!(again, phc);
        assert_ne!(
            PasswordHash::new(&again).unwrap().salt,
            PasswordHash::new(&phc).unwrap().salt
        );
    }
}
