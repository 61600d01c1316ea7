//! Bearer tokens for the remote API: scoped, expiring, rotatable, revocable. Only a SHA-256
//! of each secret is stored (`<state>/api/tokens.json`, mode 0600); the secret is shown once,
//! when the token is created or rotated.
//!
//! A token reads `snsr_<id>_<secret>`: the id finds the record without scanning, the secret
//! (32 random bytes, base64url) is what the hash checks.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token store {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token store {path} is damaged: {message}")]
    Damaged { path: String, message: String },
    #[error("cannot write the token store {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no token with id {0}")]
    NoSuchToken(String),
    #[error("token {0} is revoked")]
    AlreadyRevoked(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no randomness from the kernel")]
    Random,
}

/// What a token may do. Each scope includes the ones before it: `respond` can read, `admin`
/// can respond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Respond,
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Respond => "respond",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_scope(s)
    }
}

/// `read`, `respond` or `admin`.
pub fn parse_scope(s: &str) -> Result<Scope, String> {
    match s {
        "read" => Ok(Scope::Read),
        "respond" => Ok(Scope::Respond),
        "admin" => Ok(Scope::Admin),
        other => Err(format!(
            "unknown scope {:?} (read, respond, admin)",
            crate::escape::escape_str(other, 40)
        )),
    }
}

/// One token as stored: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Hex SHA-256 of the secret part.
    pub hash: String,
    pub created: i64,
    pub expires: i64,
    #[serde(default)]
    pub revoked: Option<i64>,
    /// Rotated into this token; valid until `grace_until`.
    #[serde(default)]
    pub rotated_to: Option<String>,
    #[serde(default)]
    pub grace_until: Option<i64>,
    #[serde(default)]
    pub last_used: Option<i64>,
    #[serde(default)]
    pub last_source: Option<String>,
    #[serde(default)]
    pub uses: u64,
    /// Who made it (`cli:uid=0`).
    #[serde(default)]
    pub created_by: String,
}

/// A token's state at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Active,
    /// Rotated: still accepted until its grace period ends.
    Grace,
    Rotated,
    Expired,
    Revoked,
}

impl TokenRecord {
    pub fn state(&self, now: i64) -> State {
        if self.revoked.is_some() {
            State::Revoked
        } else if self.rotated_to.is_some() {
            if self.grace_until.is_some_and(|g| now < g) && now < self.expires {
                State::Grace
            } else {
                State::Rotated
            }
        } else if now >= self.expires {
            State::Expired
        } else {
            State::Active
        }
    }
}

/// Why a presented token was refused (goes to the audit trail and the failure counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Unknown,
    BadSecret,
    Expired,
    Revoked,
    Rotated,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "no bearer token",
            Refusal::Malformed => "malformed token",
            Refusal::Unknown => "unknown token id",
            Refusal::BadSecret => "wrong secret",
            Refusal::Expired => "token expired",
            Refusal::Revoked => "token revoked",
            Refusal::Rotated => "token rotated and its grace period is over",
        }
    }
}

/// An accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub name: String,
    pub scope: Scope,
}

/// A token just made: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    pub id: String,
    pub token: String,
    pub name: String,
    pub scope: Scope,
    pub expires: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// Records dropped from the file this long after they stopped being valid.
const KEEP_DEAD_SECS: i64 = 7 * 24 * 3600;
/// Longest name kept.
const MAX_NAME: usize = 64;
/// Most tokens the store holds (live or recently dead).
pub const MAX_TOKENS: usize = 1000;

pub struct TokenStore {
    path: PathBuf,
    tokens: BTreeMap<String, TokenRecord>,
    /// Use counters changed since the last save.
    dirty: bool,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| TokenError::Random)?;
    Ok(b)
}

fn hash(secret: &str) -> String {
    crate::ioc::hashes::hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Equal in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Split `snsr_<id>_<secret>`; `None` for anything else.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("snsr_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

impl TokenStore {
    /// Open the store (an absent file is an empty store).
    pub fn open(path: &Path) -> Result<Self, TokenError> {
        let mut store = TokenStore {
            path: path.to_owned(),
            tokens: BTreeMap::new(),
            dirty: false,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(TokenError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let file: File = serde_json::from_str(&text).map_err(|e| TokenError::Damaged {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        for t in file.tokens {
            store.tokens.insert(t.id.clone(), t);
        }
        Ok(store)
    }

    /// An empty store at `path` (used when the file cannot be read and the API is off).
    pub fn empty(path: &Path) -> Self {
        TokenStore {
            path: path.to_owned(),
            tokens: BTreeMap::new(),
            dirty: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the store: a temporary file made 0600 before any byte is written, then renamed.
    pub fn save(&mut self) -> Result<(), TokenError> {
        let err = |source| TokenError::Write {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let file = File {
            version: 1,
            tokens: self.tokens.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| err(std::io::Error::other(e)))?;
        super::write_private(&self.path, &text, 0o600).map_err(err)?;
        self.dirty = false;
        Ok(())
    }

    /// Save only if use counters changed.
    pub fn save_if_dirty(&mut self) -> Result<(), TokenError> {
        if self.dirty { self.save() } else { Ok(()) }
    }

    fn prune(&mut self, now: i64) {
        self.tokens.retain(|_, t| {
            let dead_since = match t.state(now) {
                State::Active | State::Grace => return true,
                State::Revoked => t.revoked.unwrap_or(now),
                State::Rotated => t.grace_until.unwrap_or(t.expires).min(t.expires),
                State::Expired => t.expires,
            };
            now - dead_since < KEEP_DEAD_SECS
        });
    }

    /// A new token valid for `ttl_secs`.
    pub fn create(
        &mut self,
        name: &str,
        scope: Scope,
        ttl_secs: i64,
        actor: &str,
        now: i64,
    ) -> Result<Issued, TokenError> {
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(TokenError::Invalid(format!(
                "a token name is 1 to {MAX_NAME} printable characters"
            )));
        }
        if ttl_secs <= 0 {
            return Err(TokenError::Invalid("the lifetime must be positive".into()));
        }
        self.prune(now);
        if self.tokens.len() >= MAX_TOKENS {
            return Err(TokenError::Invalid(format!(
                "the store holds {MAX_TOKENS} tokens; revoke some first"
            )));
        }
        let id = crate::ioc::hashes::hex(&random_bytes::<8>()?);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let rec = TokenRecord {
            id: id.clone(),
            name: name.to_owned(),
            scope,
            hash: hash(&secret),
            created: now,
            expires: now.saturating_add(ttl_secs),
            revoked: None,
            rotated_to: None,
            grace_until: None,
            last_used: None,
            last_source: None,
            uses: 0,
            created_by: actor.to_owned(),
        };
        let issued = Issued {
            id: id.clone(),
            token: format!("snsr_{id}_{secret}"),
            name: rec.name.clone(),
            scope,
            expires: rfc3339(rec.expires),
        };
        self.tokens.insert(id, rec);
        self.save()?;
        Ok(issued)
    }

    /// A new secret for token `id` with the same name, scope and lifetime; the old one stays
    /// valid for `grace_secs`.
    pub fn rotate(
        &mut self,
        id: &str,
        grace_secs: i64,
        actor: &str,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let old = self
            .tokens
            .get(id)
            .ok_or_else(|| TokenError::NoSuchToken(crate::escape::escape_str(id, 40)))?
            .clone();
        match old.state(now) {
            State::Active => {}
            State::Revoked => return Err(TokenError::AlreadyRevoked(id.to_owned())),
            s => {
                return Err(TokenError::Invalid(format!(
                    "token {id} is {s:?}, not active; create a new one"
                )));
            }
        }
        let ttl = (old.expires - old.created).max(1);
        let issued = self.create(&old.name, old.scope, ttl, actor, now)?;
        if let Some(t) = self.tokens.get_mut(id) {
            t.rotated_to = Some(issued.id.clone());
            t.grace_until = Some(now.saturating_add(grace_secs.max(0)));
        }
        self.save()?;
        Ok(issued)
    }

    /// Refuse token `id` from now on (and anything rotated from it still in its grace).
    pub fn revoke(&mut self, id: &str, now: i64) -> Result<(), TokenError> {
        let t = self
            .tokens
            .get_mut(id)
            .ok_or_else(|| TokenError::NoSuchToken(crate::escape::escape_str(id, 40)))?;
        if t.revoked.is_some() {
            return Err(TokenError::AlreadyRevoked(id.to_owned()));
        }
        t.revoked = Some(now);
        self.save()
    }

    /// Check a presented token; on success, note its use.
    pub fn verify(&mut self, presented: &str, source: &str, now: i64) -> Result<Grant, Refusal> {
        let (id, secret) = parse(presented).ok_or(Refusal::Malformed)?;
        let t = self.tokens.get_mut(id).ok_or(Refusal::Unknown)?;
        if !same(hash(secret).as_bytes(), t.hash.as_bytes()) {
            return Err(Refusal::BadSecret);
        }
        match t.state(now) {
            State::Active | State::Grace => {}
            State::Expired => return Err(Refusal::Expired),
            State::Revoked => return Err(Refusal::Revoked),
            State::Rotated => return Err(Refusal::Rotated),
        }
        t.last_used = Some(now);
        t.last_source = Some(source.to_owned());
        t.uses += 1;
        self.dirty = true;
        Ok(Grant {
            id: t.id.clone(),
            name: t.name.clone(),
            scope: t.scope,
        })
    }

    /// Is the token behind `grant` still good (a stream re-checks while it runs)?
    pub fn still_valid(&self, id: &str, now: i64) -> bool {
        self.tokens
            .get(id)
            .is_some_and(|t| matches!(t.state(now), State::Active | State::Grace))
    }

    /// Tokens for `sensor token list`: live ones, or all the store still holds.
    pub fn list(&self, all: bool, now: i64) -> Vec<TokenInfo> {
        self.tokens
            .values()
            .filter(|t| all || matches!(t.state(now), State::Active | State::Grace))
            .map(|t| TokenInfo {
                id: t.id.clone(),
                name: t.name.clone(),
                scope: t.scope,
                state: t.state(now),
                created: rfc3339(t.created),
                expires: rfc3339(t.expires),
                last_used: t.last_used.map(rfc3339),
                last_source: t.last_source.clone(),
                uses: t.uses,
                rotated_to: t.rotated_to.clone(),
                grace_until: t.grace_until.map(rfc3339),
                created_by: t.created_by.clone(),
            })
            .collect()
    }
}

/// A token as `sensor token list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub state: State,
    pub created: String,
    pub expires: String,
    pub last_used: Option<String>,
    pub last_source: Option<String>,
    pub uses: u64,
    pub rotated_to: Option<String>,
    pub grace_until: Option<String>,
    pub created_by: String,
}

/// `sensor token ...` over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TokenCommand {
    Create {
        name: String,
        scope: Scope,
        /// Lifetime in seconds; the configured default (24 h) when absent.
        #[serde(default)]
        ttl_secs: Option<i64>,
    },
    Rotate {
        id: String,
        #[serde(default)]
        grace_secs: Option<i64>,
    },
    Revoke {
        id: String,
    },
    List {
        #[serde(default)]
        all: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenReply {
    Issued(Issued),
    Revoked(String),
    List(Vec<TokenInfo>),
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = TokenStore::open(&dir.path().join("api/tokens.json")).unwrap();
        (dir, s)
    }

    #[test]
    fn lifecycle_with_time_travel() {
        let (dir, mut s) = store();
        let t0 = 1_700_000_000;
        let a = s.create("ops", Scope::Read, DAY, "cli:uid=0", t0).unwrap();
        assert_eq!(
            s.verify(&a.token, "10.0.0.1", t0 + 10).unwrap().scope,
            Scope::Read
        );
        // Only the hash is on disk.
        let text = std::fs::read_to_string(dir.path().join("api/tokens.json")).unwrap();
        let secret = a.token.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "secret stored in clear");
        let mode = std::fs::metadata(dir.path().join("api/tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // One second before the 24 h default ends it works; at the end it does not.
        assert!(s.verify(&a.token, "x", t0 + DAY - 1).is_ok());
        assert_eq!(s.verify(&a.token, "x", t0 + DAY), Err(Refusal::Expired));
        // Rotation: the old one is good during the grace, then refused; the new one works.
        let b = s.create("ci", Scope::Respond, DAY, "cli", t0).unwrap();
        let b2 = s.rotate(&b.id, 300, "cli", t0 + 100).unwrap();
        assert_ne!(b.token, b2.token);
        assert!(s.verify(&b.token, "x", t0 + 399).is_ok());
        assert_eq!(s.verify(&b.token, "x", t0 + 400), Err(Refusal::Rotated));
        assert_eq!(
            s.verify(&b2.token, "x", t0 + 400).unwrap().scope,
            Scope::Respond
        );
        // Revocation is immediate.
        s.revoke(&b2.id, t0 + 500).unwrap();
        assert_eq!(s.verify(&b2.token, "x", t0 + 500), Err(Refusal::Revoked));
        assert!(matches!(
            s.revoke(&b2.id, t0 + 501),
            Err(TokenError::AlreadyRevoked(_))
        ));
        // The store survives a reopen, use counters included after a save.
        s.save().unwrap();
        let mut again = TokenStore::open(s.path()).unwrap();
        let listed = again.list(true, t0 + 600);
        assert_eq!(listed.len(), 3);
        assert!(
            listed
                .iter()
                .any(|t| t.id == a.id && t.uses == 2 && t.last_source.as_deref() == Some("x"))
        );
        assert_eq!(
            again.verify(&b2.token, "x", t0 + 600),
            Err(Refusal::Revoked)
        );
        // Live list: only the first token (expired, rotated and revoked ones are not live).
        let live: Vec<_> = again
            .list(false, t0 + 600)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(live, vec![a.id.clone()]);
        assert!(again.list(false, t0 + DAY).is_empty());
    }

    #[test]
    fn forged_and_garbled_tokens_are_refused() {
        let (_d, mut s) = store();
        let t0 = 1_700_000_000;
        let a = s.create("ops", Scope::Admin, DAY, "cli", t0).unwrap();
        let (id, secret) = parse(&a.token).unwrap();
        // Same id, another secret of the right shape.
        let mut forged = secret.as_bytes().to_vec();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = format!("snsr_{id}_{}", String::from_utf8(forged).unwrap());
        assert_eq!(s.verify(&forged, "x", t0), Err(Refusal::BadSecret));
        // Unknown id.
        let other = format!("snsr_{}_{secret}", "0".repeat(16));
        assert_eq!(s.verify(&other, "x", t0), Err(Refusal::Unknown));
        for garbled in [
            "",
            "snsr_",
            "Bearer x",
            &a.token[..a.token.len() - 1],
            &format!("{}=", a.token),
            &a.token.replace("snsr_", "snsx_"),
            "snsr_zzzzzzzzzzzzzzzz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "snsr_\u{1b}[31m_\n",
            "snsr_é",
        ] {
            assert_eq!(
                s.verify(garbled, "x", t0),
                Err(Refusal::Malformed),
                "{garbled:?}"
            );
        }
        // Nothing counted as a use.
        assert_eq!(s.list(true, t0)[0].uses, 0);
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let (dir, mut s) = store();
        assert!(s.create("", Scope::Read, DAY, "cli", 0).is_err());
        assert!(s.create("a\nb", Scope::Read, DAY, "cli", 0).is_err());
        assert!(s.create("ok", Scope::Read, 0, "cli", 0).is_err());
        assert!(matches!(
            s.rotate("nope", 1, "cli", 0),
            Err(TokenError::NoSuchToken(_))
        ));
        assert!(parse_scope("root").is_err());
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"version\":1,\"tokens\":[{\"id\":1}]}").unwrap();
        let err = TokenStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("damaged"), "{err}");
    }

    #[test]
    fn old_dead_tokens_are_pruned() {
        let (_d, mut s) = store();
        let a = s.create("old", Scope::Read, 10, "cli", 0).unwrap();
        s.create("new", Scope::Read, 10, "cli", KEEP_DEAD_SECS + 20)
            .unwrap();
        assert!(
            s.list(true, KEEP_DEAD_SECS + 20)
                .iter()
                .all(|t| t.id != a.id)
        );
    }
}
