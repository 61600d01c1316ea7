//! Evidence bundles under chain of custody.
//!
//! A bundle is what a responder hands to an investigator: the artefacts collected about
//! one detection (process tree, environment, memory maps, the executable), proof that
//! none of them was changed, added, removed or reordered since collection, and a log of
//! who touched the bundle and when:
//!
//! ```text
//! <root>/<id>/items/001-process-tree.json   items, in the order they were added
//! <root>/<id>/manifest.json                 what was collected, with hashes (written at seal)
//! <root>/<id>/manifest.sig                  hex Ed25519 signature over manifest.json's bytes
//! <root>/<id>/custody.jsonl                 hash-chained, signed custody log
//! ```
//!
//! Bundles are read back from disk, where anyone with access may have edited them, so
//! [`verify`] treats every byte as hostile: it never panics, never opens a path the
//! manifest made up, and reports each finding as a [`Problem`] instead of stopping at
//! the first.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::escape::escape_str;

/// Format version written into (and required of) every manifest.
pub const FORMAT: &str = "sensor-evidence/1";
/// Signing key (PKCS#8 v2), inside the key directory.
pub const SIGNING_KEY_FILE: &str = "evidence-signing.pk8";
/// Public half of the signing key, lowercase hex + newline: all a verifier needs.
pub const PUBLIC_KEY_FILE: &str = "evidence-signing.pub";
/// AES-256-GCM key for encryption at rest (32 raw bytes).
pub const AEAD_KEY_FILE: &str = "evidence-aead.key";

const MANIFEST: &str = "manifest.json";
const MANIFEST_SIG: &str = "manifest.sig";
const CUSTODY: &str = "custody.jsonl";
const ITEMS: &str = "items";
/// The file names promise a 3-digit sequence number.
const MAX_ITEMS: usize = 999;
const MAX_NAME: usize = 128;
/// Key files are tiny; refuse to slurp anything bigger.
const MAX_KEY_FILE: u64 = 4096;
/// What separates a custody line's signed body from its signature.
const SIG_FIELD: &[u8] = b",\"sig\":\"";
/// `,"sig":"` + 128 hex digits + `"}`.
const SIG_SUFFIX_LEN: usize = SIG_FIELD.len() + 128 + 2;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: key file is accessible by group or others (mode {mode:03o}); it must be 0600",
        path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error("{}: malformed key file: {reason}", path.display())]
    MalformedKey { path: PathBuf, reason: String },
    #[error("{}: does not match the signing key next to it", path.display())]
    PublicKeyMismatch { path: PathBuf },
    #[error("{}: bundle is signed by key {bundle_key}, not by ours ({our_key})", path.display())]
    WrongKey {
        path: PathBuf,
        bundle_key: String,
        our_key: String,
    },
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("{}: already exists (evidence is never overwritten)", path.display())]
    Exists { path: PathBuf },
    #[error("{}: not an evidence bundle: {reason}", path.display())]
    NotABundle { path: PathBuf, reason: String },
    #[error("{}: not a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    #[error("bundle {id}: more than {MAX_ITEMS} items")]
    TooManyItems { id: String },
    #[error("{what} failed")]
    Crypto { what: &'static str },
    #[error("cannot encode {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot format the current time: {0}")]
    Time(#[from] time::error::Format),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError {
    let path = path.to_owned();
    move |source| BundleError::Io {
        action,
        path,
        source,
    }
}

// ---------------------------------------------------------------------------------------
// Keys

/// The sensor's evidence keys: an Ed25519 signing key and, when encryption at rest is
/// on, an AES-256-GCM key.
pub struct Keys {
    sign: Ed25519KeyPair,
    public: [u8; 32],
    aead: Option<[u8; 32]>,
}

/// Never prints the secret halves.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("public", &self.public_hex())
            .field("encrypt", &self.aead.is_some())
            .finish()
    }
}

impl Keys {
    /// Loads the keys from `dir` (created 0700), generating any that are missing.
    ///
    /// New key files appear atomically and never replace an existing one, so two
    /// processes starting together agree on one key. Secret files must be mode 0600 (no
    /// group/other bits): a key others can read proves nothing.
    pub fn load_or_create(dir: &Path, encrypt: bool) -> Result<Keys, BundleError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create key directory", dir))?;
        let rng = SystemRandom::new();

        let pk8_path = dir.join(SIGNING_KEY_FILE);
        let pk8 = load_or_create_secret(&pk8_path, || {
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| BundleError::Crypto {
                    what: "generating the signing key",
                })
        })?;
        let sign = Ed25519KeyPair::from_pkcs8(&pk8).map_err(|e| BundleError::MalformedKey {
            path: pk8_path.clone(),
            reason: format!("not an Ed25519 PKCS#8 v2 key ({e})"),
        })?;
        let public: [u8; 32] =
            sign.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| BundleError::MalformedKey {
                    path: pk8_path.clone(),
                    reason: "public key is not 32 bytes".into(),
                })?;

        let pub_path = dir.join(PUBLIC_KEY_FILE);
        match create_exclusive(&pub_path, format!("{}\n", hex(&public)).as_bytes(), 0o644) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if load_public(&pub_path)? != public {
                    return Err(BundleError::PublicKeyMismatch { path: pub_path });
                }
            }
            Err(e) => return Err(io_err("create", &pub_path)(e)),
        }

        let aead = if encrypt {
            let path = dir.join(AEAD_KEY_FILE);
            let bytes = load_or_create_secret(&path, || {
                let mut key = [0u8; 32];
                rng.fill(&mut key).map_err(|_| BundleError::Crypto {
                    what: "generating the encryption key",
                })?;
                Ok(key.to_vec())
            })?;
            Some(aead_key_from(&path, &bytes)?)
        } else {
            None
        };
        Ok(Keys { sign, public, aead })
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    pub fn public_hex(&self) -> String {
        hex(&self.public)
    }

    pub fn aead_key(&self) -> Option<[u8; 32]> {
        self.aead
    }

    /// Options that check a bundle against these keys (signer and, if any, decryption).
    pub fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            public_key: Some(self.public),
            aead_key: self.aead,
        }
    }

    fn sign_hex(&self, msg: &[u8]) -> String {
        hex(self.sign.sign(msg).as_ref())
    }
}

/// Reads a public key file (`evidence-signing.pub`): 64 lowercase hex digits, optional
/// trailing newline. Enough to verify bundles without the secret key.
pub fn load_public(path: &Path) -> Result<[u8; 32], BundleError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_end(&mut bytes))
        .map_err(io_err("read", path))?;
    unhex(bytes.trim_ascii()).ok_or_else(|| BundleError::MalformedKey {
        path: path.to_owned(),
        reason: "expected 64 lowercase hex digits (an Ed25519 public key)".into(),
    })
}

/// Reads an encryption key file (`evidence-aead.key`), with the same permission rules as
/// [`Keys::load_or_create`]; for verifying encrypted bundles elsewhere.
pub fn load_aead_key(path: &Path) -> Result<[u8; 32], BundleError> {
    let bytes = read_secret(path)?.ok_or_else(|| BundleError::Io {
        action: "read",
        path: path.to_owned(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    aead_key_from(path, &bytes)
}

fn aead_key_from(path: &Path, bytes: &[u8]) -> Result<[u8; 32], BundleError> {
    bytes.try_into().map_err(|_| BundleError::MalformedKey {
        path: path.to_owned(),
        reason: format!("expected 32 bytes, found {}", bytes.len()),
    })
}

/// Returns the secret in `path`, or creates it with `generate`. If another process
/// creates it first, its key wins and ours is discarded.
fn load_or_create_secret(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, BundleError>,
) -> Result<Vec<u8>, BundleError> {
    if let Some(bytes) = read_secret(path)? {
        return Ok(bytes);
    }
    let fresh = generate()?;
    match create_exclusive(path, &fresh, 0o600) {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_secret(path)?.ok_or_else(|| io_err("read", path)(e))
        }
        Err(e) => Err(io_err("create", path)(e)),
    }
}

/// `None` if the file does not exist. Refuses symlinks, non-files, group/other access.
pub(crate) fn read_secret(path: &Path) -> Result<Option<Vec<u8>>, BundleError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open key file", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("stat", path))?;
    if !meta.is_file() {
        return Err(BundleError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(BundleError::InsecureKeyFile {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(BundleError::MalformedKey {
            path: path.to_owned(),
            reason: format!("larger than {MAX_KEY_FILE} bytes"),
        });
    }
    Ok(Some(bytes))
}

// ---------------------------------------------------------------------------------------
// Files

/// A temporary file next to its final place, so the rename stays on one file system.
fn temp_in(dir: &Path, mode: u32) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
}

/// Makes `tmp` durable as `path`, failing (`AlreadyExists`) rather than replacing a file.
fn persist(tmp: NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Writes a new file atomically: it appears complete or not at all, and never over
/// another.
pub(crate) fn create_exclusive(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = temp_in(path.parent().unwrap_or(Path::new(".")), mode)?;
    tmp.write_all(bytes)?;
    persist(tmp, path)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    create_exclusive(path, bytes, 0o600).map_err(io_err("create", path))
}

fn now() -> Result<String, BundleError> {
    Ok(OffsetDateTime::now_utc().format(&Rfc3339)?)
}

/// Why `name` is not a safe bundle id / item name, if it is not: a single path component
/// of `[A-Za-z0-9._-]`, 1..=128 characters, not hidden (which also rules out `.`/`..`).
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME {
        Some("longer than 128 characters")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only A-Z a-z 0-9 . _ - are allowed")
    } else {
        None
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), BundleError> {
    match name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(BundleError::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Manifest

/// `manifest.json`. Signed as exact bytes, so field order and formatting never matter to
/// verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    pub subject: Value,
    pub created: String,
    pub sealed: String,
    /// Hex Ed25519 public key of the signer. Self-asserted: anyone can re-sign a forged
    /// manifest with their own key, so verifiers should pin the expected key.
    pub public_key: String,
    pub encrypted: bool,
    pub items: Vec<Item>,
    pub missing: Vec<Missing>,
    /// Hex SHA-256 of the last custody line written before the seal: ties the manifest
    /// to the log, so the log cannot be cut or rewritten up to that point unnoticed.
    pub custody_head: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u32,
    pub name: String,
    /// `<seq:03>-<name>` under `items/`.
    pub file: String,
    pub kind: String,
    /// Size of the stored file (ciphertext when encrypted).
    pub size: u64,
    /// Hex SHA-256 of the stored file.
    pub sha256: String,
    pub collected_at: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Full size of the source when truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_size: Option<u64>,
    /// SHA-256 of the whole source when truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// SHA-256 of the stored plaintext when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An item that could not be collected (e.g. the process had already exited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    pub kind: String,
    pub reason: String,
    pub at: String,
}

/// What [`BundleWriter::add`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    pub seq: u32,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub truncated: bool,
}

// ---------------------------------------------------------------------------------------
// Writing

/// Collects items into a new bundle. Dropping it without [`seal`](Self::seal) leaves an
/// unsealed bundle, which [`verify`] refuses as "not a bundle".
#[derive(Debug)]
pub struct BundleWriter<'k> {
    dir: PathBuf,
    id: String,
    subject: Value,
    created: String,
    actor: String,
    keys: &'k Keys,
    rng: SystemRandom,
    items: Vec<Item>,
    missing: Vec<Missing>,
}

impl<'k> BundleWriter<'k> {
    /// Creates `<root>/<id>/` (0700; refused if it exists: evidence is never
    /// overwritten) and opens its custody log with an `open` entry by `actor`.
    pub fn create(
        root: &Path,
        id: &str,
        subject: Value,
        actor: &str,
        keys: &'k Keys,
    ) -> Result<Self, BundleError> {
        check_name("bundle id", id)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err("create evidence directory", root))?;
        let dir = root.join(id);
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BundleError::Exists { path: dir });
            }
            Err(e) => return Err(io_err("create bundle directory", &dir)(e)),
        }
        let items = dir.join(ITEMS);
        DirBuilder::new()
            .mode(0o700)
            .create(&items)
            .map_err(io_err("create", &items))?;
        let custody = dir.join(CUSTODY);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&custody)
            .map_err(io_err("create", &custody))?;
        sync_parent(&custody).map_err(io_err("sync", &dir))?;

        let writer = Self {
            dir,
            id: id.to_owned(),
            created: now()?,
            actor: actor.to_owned(),
            keys,
            rng: SystemRandom::new(),
            items: Vec::new(),
            missing: Vec::new(),
            subject,
        };
        writer.log("open", json!({ "bundle": id, "subject": writer.subject }))?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stores `bytes` as the next item (encrypted if the keys say so).
    pub fn add(&mut self, name: &str, kind: &str, bytes: &[u8]) -> Result<ItemRef, BundleError> {
        let (seq, file, path) = self.next_item(name)?;
        let (stored, plaintext_sha256) = match &self.keys.aead {
            Some(key) => (
                Cow::Owned(self.encrypt(key, &file, bytes)?),
                Some(hex(&sha256(bytes))),
            ),
            None => (Cow::Borrowed(bytes), None),
        };
        write_new(&path, &stored)?;
        self.finish(
            Item {
                seq,
                name: name.to_owned(),
                file,
                kind: kind.to_owned(),
                size: stored.len() as u64,
                sha256: hex(&sha256(&stored)),
                collected_at: now()?,
                truncated: false,
                source_size: None,
                source_sha256: None,
                plaintext_sha256,
            },
            path,
        )
    }

    /// Copies the regular file `src` as the next item, keeping at most `max_bytes`. When
    /// truncated, the item also records the source's full size and SHA-256 (the rest is
    /// read and hashed, not stored), so the original can still be matched later.
    pub fn add_file(
        &mut self,
        name: &str,
        kind: &str,
        src: &Path,
        max_bytes: u64,
    ) -> Result<ItemRef, BundleError> {
        let (seq, file, path) = self.next_item(name)?;
        // O_NONBLOCK: opening a FIFO must not hang collection; it is refused below.
        let mut source = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(src)
            .map_err(io_err("open evidence source", src))?;
        let meta = source.metadata().map_err(io_err("stat", src))?;
        if !meta.is_file() {
            return Err(BundleError::NotRegularFile {
                path: src.to_owned(),
            });
        }
        let (size, sha, plaintext_sha256, copied) = match &self.keys.aead {
            Some(key) => {
                let mut plain = Vec::new();
                let copied = copy_prefix(&mut source, src, max_bytes, &mut plain, &path)?;
                let stored = self.encrypt(key, &file, &plain)?;
                write_new(&path, &stored)?;
                let plain_sha = Some(hex(&copied.kept_sha));
                (stored.len() as u64, sha256(&stored), plain_sha, copied)
            }
            None => {
                let mut tmp = temp_in(&self.dir.join(ITEMS), 0o600)
                    .map_err(io_err("create a temporary file for", &path))?;
                let copied = copy_prefix(&mut source, src, max_bytes, tmp.as_file_mut(), &path)?;
                persist(tmp, &path).map_err(io_err("create", &path))?;
                (copied.kept, copied.kept_sha, None, copied)
            }
        };
        let truncated = copied.total > copied.kept;
        self.finish(
            Item {
                seq,
                name: name.to_owned(),
                file,
                kind: kind.to_owned(),
                size,
                sha256: hex(&sha),
                collected_at: now()?,
                truncated,
                source_size: truncated.then_some(copied.total),
                source_sha256: truncated.then(|| hex(&copied.total_sha)),
                plaintext_sha256,
            },
            path,
        )
    }

    /// Records that an item of `kind` could not be collected. Collection is best effort:
    /// the bundle goes on, and the manifest lists the gap under `missing`.
    pub fn note_error(&mut self, kind: &str, message: &str) -> Result<(), BundleError> {
        let at = now()?;
        self.log("collect.failed", json!({ "kind": kind, "reason": message }))?;
        self.missing.push(Missing {
            kind: kind.to_owned(),
            reason: message.to_owned(),
            at,
        });
        Ok(())
    }

    /// Writes and signs `manifest.json`, then logs the `seal` by `actor`. The custody
    /// log stays locked throughout, so the manifest's `custody_head` is the line right
    /// before the seal entry.
    pub fn seal(self, actor: &str) -> Result<PathBuf, BundleError> {
        let mut log = CustodyLog::open(&self.dir)?;
        let head = log.tail()?.prev;
        let (items, missing) = (self.items.len(), self.missing.len());
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            id: self.id,
            subject: self.subject,
            created: self.created,
            sealed: now()?,
            public_key: self.keys.public_hex(),
            encrypted: self.keys.aead.is_some(),
            items: self.items,
            missing: self.missing,
            custody_head: hex(&head),
        };
        let mut bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|source| BundleError::Json {
                what: "the manifest",
                source,
            })?;
        bytes.push(b'\n');
        write_new(&self.dir.join(MANIFEST), &bytes)?;
        let sig = format!("{}\n", self.keys.sign_hex(&bytes));
        write_new(&self.dir.join(MANIFEST_SIG), sig.as_bytes())?;
        log.append(
            self.keys,
            actor,
            "seal",
            json!({ "manifest_sha256": hex(&sha256(&bytes)), "items": items, "missing": missing }),
        )?;
        Ok(self.dir)
    }

    fn next_item(&self, name: &str) -> Result<(u32, String, PathBuf), BundleError> {
        check_name("item name", name)?;
        if self.items.len() >= MAX_ITEMS {
            return Err(BundleError::TooManyItems {
                id: self.id.clone(),
            });
        }
        let seq = self.items.len() as u32 + 1;
        let file = item_file(seq, name);
        let path = self.dir.join(ITEMS).join(&file);
        Ok((seq, file, path))
    }

    fn finish(&mut self, item: Item, path: PathBuf) -> Result<ItemRef, BundleError> {
        self.log(
            "collect",
            json!({
                "seq": item.seq,
                "item": item.file,
                "kind": item.kind,
                "size": item.size,
                "sha256": item.sha256,
            }),
        )?;
        let item_ref = ItemRef {
            seq: item.seq,
            path,
            size: item.size,
            sha256: item.sha256.clone(),
            truncated: item.truncated,
        };
        self.items.push(item);
        Ok(item_ref)
    }

    fn encrypt(&self, key: &[u8; 32], file: &str, plain: &[u8]) -> Result<Vec<u8>, BundleError> {
        encrypt(&self.rng, key, &item_aad(&self.id, file), plain)
    }

    fn log(&self, action: &str, detail: Value) -> Result<(), BundleError> {
        CustodyLog::open(&self.dir)?.append(self.keys, &self.actor, action, detail)
    }
}

fn item_file(seq: u32, name: &str) -> String {
    format!("{seq:03}-{name}")
}

struct Copied {
    kept: u64,
    total: u64,
    kept_sha: [u8; 32],
    total_sha: [u8; 32],
}

/// Copies the first `max` bytes of `src` to `out`, hashing what is kept and (reading on
/// without writing) the whole source.
fn copy_prefix(
    src: &mut File,
    src_path: &Path,
    max: u64,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<Copied, BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut kept_hash, mut total_hash) = (Sha256::new(), Sha256::new());
    let (mut kept, mut total) = (0u64, 0u64);
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", src_path)(e)),
        };
        let chunk = &buf[..n];
        total_hash.update(chunk);
        total += n as u64;
        let room = max.saturating_sub(kept);
        let keep = if room < n as u64 { room as usize } else { n };
        if keep > 0 {
            kept_hash.update(&chunk[..keep]);
            out.write_all(&chunk[..keep])
                .map_err(io_err("write", out_path))?;
            kept += keep as u64;
        }
    }
    Ok(Copied {
        kept,
        total,
        kept_sha: kept_hash.finalize().into(),
        total_sha: total_hash.finalize().into(),
    })
}

/// Associated data binding an encrypted item to its place: `<bundle id>/items/<file>`.
/// Neither part may contain '/', so the string is unambiguous; moving a ciphertext to
/// another file name or bundle makes it fail to decrypt.
fn item_aad(id: &str, file: &str) -> Vec<u8> {
    format!("{id}/{ITEMS}/{file}").into_bytes()
}

/// `nonce (12 random bytes) || ciphertext || tag`.
fn encrypt(
    rng: &SystemRandom,
    key: &[u8; 32],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, BundleError> {
    let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| BundleError::Crypto {
        what: "loading the encryption key",
    })?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| BundleError::Crypto {
        what: "generating a nonce",
    })?;
    let mut body = plain.to_vec();
    LessSafeKey::new(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| BundleError::Crypto { what: "encryption" })?;
    let mut out = nonce.to_vec();
    out.append(&mut body);
    Ok(out)
}

/// The plaintext, or `None` if `stored` was tampered with, moved, or the key is wrong.
fn decrypt(key: &[u8; 32], aad: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let (nonce, sealed) = stored.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    Some(plain.to_vec())
}

// ---------------------------------------------------------------------------------------
// Custody log

/// One line of `custody.jsonl`.
///
/// The exact rule, so other tools can check a log:
/// 1. `B = serde_json::to_string(entry)`: a compact JSON object with fields in the order
///    `seq, time, actor, action, detail, prev` (no `sig`);
/// 2. `sig` = lowercase hex of the Ed25519 signature over the bytes of `B`;
/// 3. the written line is `B` without its final `}`, then `,"sig":"<sig>"}`, then `\n`.
///
/// So a verifier strips the trailing `,"sig":"<128 hex>"}` and re-appends `}` to recover
/// the signed bytes exactly, without re-serialising anything. `seq` starts at 1 and
/// equals the line number. `prev` is the hex SHA-256 of the previous line as written
/// (including its `sig`, excluding its newline), or 64 zeros on the first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustodyEntry {
    seq: u64,
    time: String,
    actor: String,
    action: String,
    detail: Value,
    prev: String,
}

impl CustodyEntry {
    fn signed_line(&self, keys: &Keys) -> Result<Vec<u8>, BundleError> {
        let body = serde_json::to_vec(self).map_err(|source| BundleError::Json {
            what: "a custody entry",
            source,
        })?;
        let sig = keys.sign_hex(&body);
        let mut line = body;
        line.pop(); // the object's closing '}'
        line.extend_from_slice(SIG_FIELD);
        line.extend_from_slice(sig.as_bytes());
        line.extend_from_slice(b"\"}");
        Ok(line)
    }
}

struct ParsedLine {
    entry: CustodyEntry,
    /// The signed bytes (`B` in [`CustodyEntry`]'s rule).
    body: Vec<u8>,
    sig: [u8; 64],
}

fn parse_line(line: &[u8]) -> Option<ParsedLine> {
    let split = line.len().checked_sub(SIG_SUFFIX_LEN)?;
    let (head, suffix) = line.split_at_checked(split)?;
    let sig = unhex(suffix.strip_prefix(SIG_FIELD)?.strip_suffix(b"\"}")?)?;
    let mut body = head.to_vec();
    body.push(b'}');
    let entry = serde_json::from_slice(&body).ok()?;
    Some(ParsedLine { entry, body, sig })
}

/// The custody log of one bundle, locked (flock) for as long as this lives, so
/// concurrent appends chain one after the other instead of forking.
struct CustodyLog {
    file: Flock<File>,
    path: PathBuf,
}

struct Tail {
    next_seq: u64,
    /// Hash of the last line.
    prev: [u8; 32],
    /// The last line lacks its newline (a write was cut short).
    needs_newline: bool,
}

impl CustodyLog {
    fn open(bundle: &Path) -> Result<Self, BundleError> {
        let path = bundle.join(CUSTODY);
        let file = match OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BundleError::NotABundle {
                    path: bundle.to_owned(),
                    reason: format!("no {CUSTODY}"),
                });
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_err("lock", &path)(errno.into()))?;
        Ok(Self { file, path })
    }

    /// Where the next entry chains from. A damaged last line is chained from as it is
    /// (verify reports the damage); its seq is then guessed from the line count.
    fn tail(&mut self) -> Result<Tail, BundleError> {
        let mut data = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut data))
            .map_err(io_err("read", &self.path))?;
        if data.is_empty() {
            return Ok(Tail {
                next_seq: 1,
                prev: [0; 32],
                needs_newline: false,
            });
        }
        let needs_newline = !data.ends_with(b"\n");
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        let last = body.rsplit(|&b| b == b'\n').next().unwrap_or(body);
        let lines = body.split(|&b| b == b'\n').count() as u64;
        let next_seq = parse_line(last).map_or(lines + 1, |l| l.entry.seq.saturating_add(1));
        Ok(Tail {
            next_seq,
            prev: sha256(last),
            needs_newline,
        })
    }

    fn append(
        &mut self,
        keys: &Keys,
        actor: &str,
        action: &str,
        detail: Value,
    ) -> Result<(), BundleError> {
        let tail = self.tail()?;
        let entry = CustodyEntry {
            seq: tail.next_seq,
            time: now()?,
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
            prev: hex(&tail.prev),
        };
        let mut out = Vec::new();
        if tail.needs_newline {
            out.push(b'\n');
        }
        out.extend(entry.signed_line(keys)?);
        out.push(b'\n');
        self.file
            .write_all(&out)
            .map_err(io_err("append to", &self.path))?;
        self.file.sync_data().map_err(io_err("sync", &self.path))
    }
}

/// Appends a custody entry to an existing bundle, sealed or not: a later access such as
/// "verify", "report", "export" or "contain.freeze". A damaged log is appended to anyway
/// (refusing would hide the access; [`verify`] reports the damage), but a sealed bundle
/// signed by another key is refused, since the entry could never verify.
pub fn record(
    bundle: &Path,
    keys: &Keys,
    actor: &str,
    action: &str,
    detail: Value,
) -> Result<(), BundleError> {
    let manifest_path = bundle.join(MANIFEST);
    if let Ok(bytes) = fs::read(&manifest_path)
        && let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes)
        && manifest.public_key != keys.public_hex()
    {
        return Err(BundleError::WrongKey {
            path: manifest_path,
            bundle_key: manifest.public_key,
            our_key: keys.public_hex(),
        });
    }
    CustodyLog::open(bundle)?.append(keys, actor, action, detail)
}

// ---------------------------------------------------------------------------------------
// Verifying

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The expected signer. Without it, the manifest's own key is used, which only
    /// proves the bundle is self-consistent, not who made it.
    pub public_key: Option<[u8; 32]>,
    /// Decrypts encrypted items to check their plaintext hashes too.
    pub aead_key: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeySource {
    #[serde(rename = "given")]
    Given,
    #[serde(rename = "manifest (self-asserted)")]
    Manifest,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Given => "given",
            KeySource::Manifest => "manifest (self-asserted)",
        })
    }
}

/// One integrity finding. Strings come from the bundle (attacker-controlled) and are
/// escaped when displayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    SignatureMissing,
    SignatureMalformed {
        reason: String,
    },
    SignatureInvalid,
    /// The manifest's key is malformed and none was given: signatures unchecked.
    NoPublicKey,
    ManifestUnparseable {
        error: String,
    },
    UnknownFormat {
        format: String,
    },
    /// The manifest names another signer than the key given.
    KeyMismatch {
        manifest_key: String,
    },
    DuplicateSeq {
        seq: u32,
        file: String,
    },
    OutOfOrder {
        seq: u32,
        file: String,
        position: usize,
    },
    /// A file name that is not a plain item name (e.g. `../x`); never opened.
    UnsafeFileName {
        seq: u32,
        file: String,
    },
    /// The file name is not `<seq:03>-<name>`.
    Misnamed {
        seq: u32,
        name: String,
        file: String,
    },
    ItemMissing {
        file: String,
    },
    ItemUnreadable {
        file: String,
        error: String,
    },
    SizeDiffers {
        file: String,
        expected: u64,
        found: u64,
    },
    ItemChanged {
        file: String,
    },
    DecryptFailed {
        file: String,
    },
    PlaintextChanged {
        file: String,
    },
    ExtraFile {
        file: String,
    },
    ItemsUnreadable {
        error: String,
    },
    CustodyMissing,
    CustodyUnreadable {
        error: String,
    },
    CustodyUnparseable {
        line: usize,
    },
    CustodySeq {
        line: usize,
        expected: u64,
        found: u64,
    },
    CustodyChainBroken {
        line: usize,
    },
    CustodySignatureInvalid {
        line: usize,
    },
    CustodyHeadNotFound,
    CustodySealMissing,
}

fn esc(s: &str) -> String {
    escape_str(s, 200)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Problem::*;
        match self {
            SignatureMissing => write!(f, "{MANIFEST_SIG} is missing: the manifest is unsigned"),
            SignatureMalformed { reason } => {
                write!(f, "{MANIFEST_SIG} is malformed: {}", esc(reason))
            }
            SignatureInvalid => write!(
                f,
                "{MANIFEST_SIG} does not verify: {MANIFEST} was changed or signed by another key"
            ),
            NoPublicKey => write!(
                f,
                "no usable public key (the manifest's is malformed and none was given): \
                 signatures not checked"
            ),
            ManifestUnparseable { error } => {
                write!(f, "{MANIFEST} cannot be parsed: {}", esc(error))
            }
            UnknownFormat { format } => {
                write!(
                    f,
                    "{MANIFEST}: unknown format {} (expected {FORMAT})",
                    esc(format)
                )
            }
            KeyMismatch { manifest_key } => write!(
                f,
                "{MANIFEST} names signing key {}, not the key given",
                esc(manifest_key)
            ),
            DuplicateSeq { seq, file } => {
                write!(
                    f,
                    "item {}: duplicate seq {seq} (items duplicated or reordered)",
                    esc(file)
                )
            }
            OutOfOrder {
                seq,
                file,
                position,
            } => write!(
                f,
                "item {}: seq {seq} listed at position {position} (items reordered)",
                esc(file)
            ),
            UnsafeFileName { seq, file } => write!(
                f,
                "item seq {seq}: {} is not a plain item file name; not opened",
                esc(file)
            ),
            Misnamed { seq, name, file } => write!(
                f,
                "item {}: file name does not match seq {seq} and name {} (renamed or reordered)",
                esc(file),
                esc(name)
            ),
            ItemMissing { file } => write!(f, "item {}: missing", esc(file)),
            ItemUnreadable { file, error } => {
                write!(f, "item {}: unreadable: {}", esc(file), esc(error))
            }
            SizeDiffers {
                file,
                expected,
                found,
            } => write!(
                f,
                "item {}: size is {found} bytes, the manifest says {expected}",
                esc(file)
            ),
            ItemChanged { file } => {
                write!(
                    f,
                    "item {}: changed (SHA-256 differs from the manifest)",
                    esc(file)
                )
            }
            DecryptFailed { file } => write!(
                f,
                "item {}: decryption failed (ciphertext tampered, moved, or wrong key)",
                esc(file)
            ),
            PlaintextChanged { file } => write!(
                f,
                "item {}: decrypted content differs from the manifest's plaintext hash",
                esc(file)
            ),
            ExtraFile { file } => {
                write!(
                    f,
                    "{ITEMS}/{}: extra file not listed in the manifest",
                    esc(file)
                )
            }
            ItemsUnreadable { error } => write!(f, "{ITEMS}/ unreadable: {}", esc(error)),
            CustodyMissing => write!(f, "{CUSTODY} is missing"),
            CustodyUnreadable { error } => write!(f, "{CUSTODY} unreadable: {}", esc(error)),
            CustodyUnparseable { line } => write!(f, "{CUSTODY} line {line}: unparseable"),
            CustodySeq {
                line,
                expected,
                found,
            } => write!(
                f,
                "{CUSTODY} line {line}: seq {found}, expected {expected} (entries removed or inserted)"
            ),
            CustodyChainBroken { line } => write!(
                f,
                "{CUSTODY} line {line}: hash chain broken (a line before it was removed, inserted or edited)"
            ),
            CustodySignatureInvalid { line } => {
                write!(
                    f,
                    "{CUSTODY} line {line}: signature invalid (entry edited or forged)"
                )
            }
            CustodyHeadNotFound => write!(
                f,
                "{CUSTODY}: the manifest's custody head is not in the log (log truncated or \
                 rewritten before the seal)"
            ),
            CustodySealMissing => write!(
                f,
                "{CUSTODY}: no seal entry for this manifest after its custody head"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// The manifest's bundle id, if the manifest parsed.
    pub id: Option<String>,
    pub items: usize,
    pub custody_entries: usize,
    pub key_source: KeySource,
    /// Hex of the key signatures were checked against, if any.
    pub public_key: Option<String>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            write!(
                f,
                "OK: {} items, {} custody entries, signed by {}",
                self.items,
                self.custody_entries,
                self.public_key.as_deref().unwrap_or("?")
            )?;
            if self.key_source == KeySource::Manifest {
                write!(
                    f,
                    " (key taken from the manifest, self-asserted: pass the expected public key \
                     to check who signed)"
                )?;
            }
            return Ok(());
        }
        write!(f, "FAILED: {} problem(s)", self.problems.len())?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Checks a sealed bundle. `Err` only when `bundle` is not a bundle at all (no readable
/// `manifest.json`); every integrity finding is a [`Problem`] in the report.
pub fn verify(bundle: &Path, opts: &VerifyOptions) -> Result<VerifyReport, BundleError> {
    let bytes = fs::read(bundle.join(MANIFEST)).map_err(|e| BundleError::NotABundle {
        path: bundle.to_owned(),
        reason: format!("cannot read {MANIFEST}: {e}"),
    })?;
    let parsed = serde_json::from_slice::<Manifest>(&bytes);
    let (key, key_source) = match opts.public_key {
        Some(key) => (Some(key), KeySource::Given),
        None => (
            parsed
                .as_ref()
                .ok()
                .and_then(|m| unhex(m.public_key.as_bytes())),
            KeySource::Manifest,
        ),
    };
    let mut report = VerifyReport {
        ok: false,
        id: None,
        items: 0,
        custody_entries: 0,
        key_source,
        public_key: key.map(|k| hex(&k)),
        problems: Vec::new(),
    };
    let problems = &mut report.problems;
    if let Some(key) = &key {
        check_manifest_sig(bundle, &bytes, key, problems);
    }
    let manifest = match parsed {
        Ok(m) => m,
        Err(e) => {
            problems.push(Problem::ManifestUnparseable {
                error: e.to_string(),
            });
            return Ok(report.finish());
        }
    };
    if key.is_none() {
        problems.push(Problem::NoPublicKey);
    }
    if manifest.format != FORMAT {
        problems.push(Problem::UnknownFormat {
            format: manifest.format.clone(),
        });
    }
    if let Some(given) = &opts.public_key
        && manifest.public_key != hex(given)
    {
        problems.push(Problem::KeyMismatch {
            manifest_key: manifest.public_key.clone(),
        });
    }
    check_items(bundle, &manifest, opts.aead_key.as_ref(), problems);
    report.custody_entries = check_custody(
        bundle,
        key.as_ref(),
        &manifest.custody_head,
        &hex(&sha256(&bytes)),
        &mut report.problems,
    );
    report.id = Some(manifest.id);
    report.items = manifest.items.len();
    Ok(report.finish())
}

impl VerifyReport {
    fn finish(mut self) -> Self {
        self.ok = self.problems.is_empty();
        self
    }
}

fn check_manifest_sig(bundle: &Path, manifest: &[u8], key: &[u8; 32], problems: &mut Vec<Problem>) {
    let text = match fs::read(bundle.join(MANIFEST_SIG)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::SignatureMissing);
            return;
        }
        Err(e) => {
            problems.push(Problem::SignatureMalformed {
                reason: e.to_string(),
            });
            return;
        }
    };
    let Some(sig) = unhex::<64>(text.strip_suffix(b"\n").unwrap_or(&text)) else {
        problems.push(Problem::SignatureMalformed {
            reason: "expected 128 lowercase hex digits".into(),
        });
        return;
    };
    if UnparsedPublicKey::new(&ED25519, key)
        .verify(manifest, &sig)
        .is_err()
    {
        problems.push(Problem::SignatureInvalid);
    }
}

fn check_items(
    bundle: &Path,
    manifest: &Manifest,
    aead: Option<&[u8; 32]>,
    problems: &mut Vec<Problem>,
) {
    let dir = bundle.join(ITEMS);
    let mut seqs = HashSet::new();
    let mut listed = HashSet::new();
    for (i, item) in manifest.items.iter().enumerate() {
        if !seqs.insert(item.seq) {
            problems.push(Problem::DuplicateSeq {
                seq: item.seq,
                file: item.file.clone(),
            });
        } else if item.seq as usize != i + 1 {
            problems.push(Problem::OutOfOrder {
                seq: item.seq,
                file: item.file.clone(),
                position: i + 1,
            });
        }
        if name_problem(&item.file).is_some() {
            problems.push(Problem::UnsafeFileName {
                seq: item.seq,
                file: item.file.clone(),
            });
            continue;
        }
        listed.insert(item.file.as_str());
        if name_problem(&item.name).is_some() || item.file != item_file(item.seq, &item.name) {
            problems.push(Problem::Misnamed {
                seq: item.seq,
                name: item.name.clone(),
                file: item.file.clone(),
            });
        }
        let aead = aead.filter(|_| manifest.encrypted);
        check_item(&dir.join(&item.file), item, &manifest.id, aead, problems);
    }

    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Every listed item is already reported missing.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            problems.push(Problem::ItemsUnreadable {
                error: e.to_string(),
            });
            return;
        }
    };
    let mut extra = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                if !name.to_str().is_some_and(|n| listed.contains(n)) {
                    extra.push(name.to_string_lossy().into_owned());
                }
            }
            Err(e) => problems.push(Problem::ItemsUnreadable {
                error: e.to_string(),
            }),
        }
    }
    extra.sort();
    problems.extend(extra.into_iter().map(|file| Problem::ExtraFile { file }));
}

fn check_item(
    path: &Path,
    item: &Item,
    id: &str,
    aead: Option<&[u8; 32]>,
    problems: &mut Vec<Problem>,
) {
    let file = || item.file.clone();
    let unreadable = |e: io::Error| Problem::ItemUnreadable {
        file: file(),
        error: e.to_string(),
    };
    // No symlinks out of the bundle; O_NONBLOCK so a planted FIFO cannot hang us.
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::ItemMissing { file: file() });
            return;
        }
        Err(e) => return problems.push(unreadable(e)),
    };
    let len = match f.metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return problems.push(unreadable(io::Error::other("not a regular file"))),
        Err(e) => return problems.push(unreadable(e)),
    };
    // Decrypt only what could be the stored ciphertext; other sizes are flagged anyway.
    let aead = aead.filter(|_| len == item.size);
    let mut stored = Vec::new();
    let hashed = match aead {
        Some(_) => f
            .read_to_end(&mut stored)
            .map(|n| (n as u64, sha256(&stored))),
        None => hash_reader(&mut f),
    };
    let (size, sha) = match hashed {
        Ok(h) => h,
        Err(e) => return problems.push(unreadable(e)),
    };
    if size != item.size {
        problems.push(Problem::SizeDiffers {
            file: file(),
            expected: item.size,
            found: size,
        });
    }
    if hex(&sha) != item.sha256 {
        problems.push(Problem::ItemChanged { file: file() });
    }
    if let Some(key) = aead {
        match decrypt(key, &item_aad(id, &item.file), &stored) {
            None => problems.push(Problem::DecryptFailed { file: file() }),
            Some(plain) => {
                if item.plaintext_sha256.as_deref() != Some(hex(&sha256(&plain)).as_str()) {
                    problems.push(Problem::PlaintextChanged { file: file() });
                }
            }
        }
    }
}

fn hash_reader(r: &mut impl Read) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let n = io::copy(r, &mut hasher)?;
    Ok((n, hasher.finalize().into()))
}

/// Walks the log once: every line must parse, number itself, chain to the line before
/// and carry a valid signature; the manifest's head must be one of the lines, with a
/// valid seal entry for this exact manifest somewhere after it. Returns the line count.
fn check_custody(
    bundle: &Path,
    key: Option<&[u8; 32]>,
    head: &str,
    manifest_sha: &str,
    problems: &mut Vec<Problem>,
) -> usize {
    let data = match fs::read(bundle.join(CUSTODY)) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::CustodyMissing);
            return 0;
        }
        Err(e) => {
            problems.push(Problem::CustodyUnreadable {
                error: e.to_string(),
            });
            return 0;
        }
    };
    let head = unhex::<32>(head.as_bytes());
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let mut lines = 0;
    let mut expected_seq = 1u64;
    let mut prev = [0u8; 32];
    let (mut head_seen, mut sealed) = (false, false);
    if !data.is_empty() {
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            let n = i + 1;
            lines = n;
            match parse_line(line) {
                None => {
                    problems.push(Problem::CustodyUnparseable { line: n });
                    expected_seq = expected_seq.saturating_add(1);
                }
                Some(parsed) => {
                    let entry = &parsed.entry;
                    if entry.seq != expected_seq {
                        problems.push(Problem::CustodySeq {
                            line: n,
                            expected: expected_seq,
                            found: entry.seq,
                        });
                    }
                    expected_seq = entry.seq.saturating_add(1);
                    if unhex::<32>(entry.prev.as_bytes()) != Some(prev) {
                        problems.push(Problem::CustodyChainBroken { line: n });
                    }
                    let signed = key.is_none_or(|key| {
                        UnparsedPublicKey::new(&ED25519, key)
                            .verify(&parsed.body, &parsed.sig)
                            .is_ok()
                    });
                    if !signed {
                        problems.push(Problem::CustodySignatureInvalid { line: n });
                    }
                    if head_seen
                        && signed
                        && entry.action == "seal"
                        && entry.detail.get("manifest_sha256").and_then(Value::as_str)
                            == Some(manifest_sha)
                    {
                        sealed = true;
                    }
                }
            }
            prev = sha256(line);
            if Some(prev) == head {
                head_seen = true;
            }
        }
    }
    if !head_seen {
        problems.push(Problem::CustodyHeadNotFound);
    } else if !sealed {
        problems.push(Problem::CustodySealMissing);
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

use crate::ioc::hashes::{hex, unhex};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tempfile::TempDir;

    const SOURCE_LEN: usize = 10_000;
    const MAX: u64 = 4096;

    fn keys(tmp: &TempDir, encrypt: bool) -> Keys {
        Keys::load_or_create(&tmp.path().join("keys"), encrypt).unwrap()
    }

    fn source_bytes() -> Vec<u8> {
        (0..SOURCE_LEN).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A sealed bundle: 3 items (the third a truncated file copy), one missing item,
    /// and one access recorded after the seal: 7 custody entries.
    fn sample(tmp: &TempDir, keys: &Keys) -> PathBuf {
        let src = tmp.path().join("exe");
        fs::write(&src, source_bytes()).unwrap();
        let root = tmp.path().join("evidence");
        let mut w = BundleWriter::create(&root, "b1", json!({"pid": 42}), "sensor", keys).unwrap();
        w.add(
            "process-tree.json",
            "process-tree",
            br#"{"pid":42,"ppid":1}"#,
        )
        .unwrap();
        w.add(
            "environment.txt",
            "environment",
            b"PATH=/usr/bin\nHOME=/root\n",
        )
        .unwrap();
        let exe = w.add_file("exe.bin", "executable", &src, MAX).unwrap();
        assert!(exe.truncated);
        w.note_error("memory-maps", "process already exited")
            .unwrap();
        let dir = w.seal("sensor").unwrap();
        record(&dir, keys, "alice", "verify", json!({"why": "triage"})).unwrap();
        dir
    }

    fn check(dir: &Path, keys: &Keys) -> VerifyReport {
        verify(dir, &keys.verify_options()).unwrap()
    }

    fn flip(path: &Path, at: usize) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    fn custody_lines(dir: &Path) -> Vec<String> {
        let text = fs::read_to_string(dir.join(CUSTODY)).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn write_custody(dir: &Path, lines: &[String]) {
        fs::write(dir.join(CUSTODY), lines.join("\n") + "\n").unwrap();
    }

    fn manifest(dir: &Path) -> Manifest {
        serde_json::from_slice(&fs::read(dir.join(MANIFEST)).unwrap()).unwrap()
    }

    #[test]
    fn round_trip() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);

        let report = check(&dir, &keys);
        assert_eq!(report.problems, vec![]);
        assert!(report.ok);
        assert_eq!(report.items, 3);
        assert_eq!(report.custody_entries, 7);
        assert_eq!(report.key_source, KeySource::Given);
        assert_eq!(
            report.to_string(),
            format!(
                "OK: 3 items, 7 custody entries, signed by {}",
                keys.public_hex()
            )
        );

        let m = manifest(&dir);
        assert_eq!(m.format, FORMAT);
        assert_eq!(m.id, "b1");
        assert_eq!(m.subject, json!({"pid": 42}));
        assert_eq!(m.public_key, keys.public_hex());
        assert!(!m.encrypted);
        let files: Vec<_> = m.items.iter().map(|i| i.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "001-process-tree.json",
                "002-environment.txt",
                "003-exe.bin"
            ]
        );
        let exe = &m.items[2];
        let src = source_bytes();
        assert!(exe.truncated);
        assert_eq!(exe.size, MAX);
        assert_eq!(exe.sha256, hex(&sha256(&src[..MAX as usize])));
        assert_eq!(exe.source_size, Some(SOURCE_LEN as u64));
        assert_eq!(exe.source_sha256, Some(hex(&sha256(&src))));
        assert_eq!(
            fs::read(dir.join(ITEMS).join("003-exe.bin")).unwrap(),
            &src[..MAX as usize]
        );
        assert!(!m.items[0].truncated && m.items[0].source_size.is_none());
        assert_eq!(m.missing.len(), 1);
        assert_eq!(m.missing[0].kind, "memory-maps");
        assert_eq!(m.missing[0].reason, "process already exited");

        let lines = custody_lines(&dir);
        let actions: Vec<_> = lines
            .iter()
            .map(|l| parse_line(l.as_bytes()).unwrap().entry.action)
            .collect();
        assert_eq!(
            actions,
            [
                "open",
                "collect",
                "collect",
                "collect",
                "collect.failed",
                "seal",
                "verify"
            ]
        );
        // The head is the line just before the seal.
        assert_eq!(m.custody_head, hex(&sha256(lines[4].as_bytes())));

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(ITEMS).join("001-process-tree.json")), 0o600);

        // Without a pinned key the manifest's own key is used, and the report says so.
        let self_asserted = verify(&dir, &VerifyOptions::default()).unwrap();
        assert!(self_asserted.ok);
        assert_eq!(self_asserted.key_source, KeySource::Manifest);
        assert!(self_asserted.to_string().contains("self-asserted"));
    }

    #[test]
    fn evidence_is_never_overwritten() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let err = BundleWriter::create(dir.parent().unwrap(), "b1", json!({}), "x", &keys);
        assert!(matches!(err, Err(BundleError::Exists { .. })), "{err:?}");
    }

    #[test]
    fn changed_item_is_named() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        flip(&dir.join(ITEMS).join("002-environment.txt"), 3);
        let report = check(&dir, &keys);
        assert!(!report.ok);
        assert_eq!(
            report.problems,
            vec![Problem::ItemChanged {
                file: "002-environment.txt".into()
            }]
        );
        let text = report.to_string();
        assert!(text.contains("002-environment.txt: changed"), "{text}");
    }

    #[test]
    fn changed_manifest_breaks_the_signature() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("42", "43", 1)).unwrap();
        let report = check(&dir, &keys);
        assert!(
            report.problems.contains(&Problem::SignatureInvalid),
            "{report}"
        );
        // The seal entry names the original manifest's hash.
        assert!(report.problems.contains(&Problem::CustodySealMissing));

        fs::remove_file(dir.join(MANIFEST_SIG)).unwrap();
        let report = check(&dir, &keys);
        assert!(report.problems.contains(&Problem::SignatureMissing));
    }

    #[test]
    fn other_signer_is_reported() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let other = Keys::load_or_create(&tmp.path().join("other"), false).unwrap();
        let report = check(&dir, &other);
        assert!(report.problems.contains(&Problem::SignatureInvalid));
        assert!(report.problems.contains(&Problem::KeyMismatch {
            manifest_key: keys.public_hex()
        }));
        assert!(
            report
                .problems
                .contains(&Problem::CustodySignatureInvalid { line: 1 })
        );
        // Appending with the wrong key is refused rather than poisoning the log.
        let err = record(&dir, &other, "mallory", "export", json!({}));
        assert!(matches!(err, Err(BundleError::WrongKey { .. })), "{err:?}");
    }

    #[test]
    fn missing_and_extra_files() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        fs::remove_file(dir.join(ITEMS).join("001-process-tree.json")).unwrap();
        fs::write(dir.join(ITEMS).join("004-planted.bin"), b"x").unwrap();
        let report = check(&dir, &keys);
        assert_eq!(
            report.problems,
            vec![
                Problem::ItemMissing {
                    file: "001-process-tree.json".into()
                },
                Problem::ExtraFile {
                    file: "004-planted.bin".into()
                },
            ]
        );
    }

    #[test]
    fn swapped_items_are_both_reported() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let items = dir.join(ITEMS);
        let (a, b) = (
            items.join("001-process-tree.json"),
            items.join("002-environment.txt"),
        );

        // Contents swapped under the original names.
        let t = items.join("swap");
        fs::rename(&a, &t).unwrap();
        fs::rename(&b, &a).unwrap();
        fs::rename(&t, &b).unwrap();
        let problems = check(&dir, &keys).problems;
        for file in ["001-process-tree.json", "002-environment.txt"] {
            let file = file.to_owned();
            assert!(
                problems.contains(&Problem::ItemChanged { file }),
                "{problems:?}"
            );
        }
        fs::rename(&a, &t).unwrap();
        fs::rename(&b, &a).unwrap();
        fs::rename(&t, &b).unwrap();
        assert!(check(&dir, &keys).ok);

        // Sequence prefixes swapped.
        fs::rename(&a, items.join("002-process-tree.json")).unwrap();
        fs::rename(&b, items.join("001-environment.txt")).unwrap();
        let problems = check(&dir, &keys).problems;
        assert_eq!(
            problems,
            vec![
                Problem::ItemMissing {
                    file: "001-process-tree.json".into()
                },
                Problem::ItemMissing {
                    file: "002-environment.txt".into()
                },
                Problem::ExtraFile {
                    file: "001-environment.txt".into()
                },
                Problem::ExtraFile {
                    file: "002-process-tree.json".into()
                },
            ]
        );
    }

    fn reorder_manifest(dir: &Path) -> Vec<u8> {
        let path = dir.join(MANIFEST);
        let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        m["items"].as_array_mut().unwrap().swap(0, 1);
        let mut bytes = serde_json::to_vec_pretty(&m).unwrap();
        bytes.push(b'\n');
        fs::write(&path, &bytes).unwrap();
        bytes
    }

    #[test]
    fn reordered_manifest() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        reorder_manifest(&dir);
        let problems = check(&dir, &keys).problems;
        assert!(
            problems.contains(&Problem::SignatureInvalid),
            "{problems:?}"
        );
        assert!(problems.contains(&Problem::OutOfOrder {
            seq: 2,
            file: "002-environment.txt".into(),
            position: 1
        }));
    }

    #[test]
    fn reordered_and_resigned_manifest_is_still_caught() {
        // An insider holding the key re-signs a reordered manifest: the signature is
        // good, but the order check and the custody seal still object.
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let bytes = reorder_manifest(&dir);
        fs::write(dir.join(MANIFEST_SIG), keys.sign_hex(&bytes) + "\n").unwrap();
        let problems = check(&dir, &keys).problems;
        assert!(
            !problems.contains(&Problem::SignatureInvalid),
            "{problems:?}"
        );
        assert_eq!(
            problems,
            vec![
                Problem::OutOfOrder {
                    seq: 2,
                    file: "002-environment.txt".into(),
                    position: 1
                },
                Problem::OutOfOrder {
                    seq: 1,
                    file: "001-process-tree.json".into(),
                    position: 2
                },
                Problem::CustodySealMissing,
            ]
        );
    }

    #[test]
    fn manifest_cannot_point_outside_the_bundle() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"001-process-tree.json\"", "\"../../keys/x\""),
        )
        .unwrap();
        let problems = check(&dir, &keys).problems;
        assert!(problems.contains(&Problem::UnsafeFileName {
            seq: 1,
            file: "../../keys/x".into()
        }));
        // The real file is now unlisted.
        assert!(problems.contains(&Problem::ExtraFile {
            file: "001-process-tree.json".into()
        }));
    }

    #[test]
    fn renamed_item_is_misnamed() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"003-exe.bin\"", "\"007-exe.bin\"")).unwrap();
        let items = dir.join(ITEMS);
        fs::rename(items.join("003-exe.bin"), items.join("007-exe.bin")).unwrap();
        let problems = check(&dir, &keys).problems;
        assert!(
            problems.contains(&Problem::SignatureInvalid),
            "{problems:?}"
        );
        assert!(problems.contains(&Problem::Misnamed {
            seq: 3,
            name: "exe.bin".into(),
            file: "007-exe.bin".into()
        }));
    }

    #[test]
    fn custody_line_deleted() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let mut lines = custody_lines(&dir);
        lines.remove(2);
        write_custody(&dir, &lines);
        let report = check(&dir, &keys);
        assert_eq!(
            report.problems,
            vec![
                Problem::CustodySeq {
                    line: 3,
                    expected: 3,
                    found: 4
                },
                Problem::CustodyChainBroken { line: 3 },
            ]
        );
        assert!(report.to_string().contains("line 3: hash chain broken"));
    }

    #[test]
    fn custody_detail_edited() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let mut lines = custody_lines(&dir);
        assert!(lines[1].contains("\"kind\":\"process-tree\""));
        lines[1] = lines[1].replace("\"kind\":\"process-tree\"", "\"kind\":\"process-trex\"");
        write_custody(&dir, &lines);
        let problems = check(&dir, &keys).problems;
        assert_eq!(
            problems,
            vec![
                Problem::CustodySignatureInvalid { line: 2 },
                Problem::CustodyChainBroken { line: 3 },
            ]
        );
    }

    #[test]
    fn custody_truncated() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        let lines = custody_lines(&dir);

        // Cut right after the head: the seal is gone.
        write_custody(&dir, &lines[..5]);
        let report = check(&dir, &keys);
        assert_eq!(report.problems, vec![Problem::CustodySealMissing]);
        assert_eq!(report.custody_entries, 5);

        // Cut before the head.
        write_custody(&dir, &lines[..3]);
        assert_eq!(
            check(&dir, &keys).problems,
            vec![Problem::CustodyHeadNotFound]
        );

        fs::remove_file(dir.join(CUSTODY)).unwrap();
        assert_eq!(check(&dir, &keys).problems, vec![Problem::CustodyMissing]);
    }

    #[test]
    fn record_appends_after_damage_and_concurrently() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let dir = sample(&tmp, &keys);
        std::thread::scope(|s| {
            for t in 0..2 {
                let (dir, keys) = (&dir, &keys);
                s.spawn(move || {
                    for i in 0..10 {
                        record(dir, keys, "t", "report", json!({"t": t, "i": i})).unwrap();
                    }
                });
            }
        });
        let report = check(&dir, &keys);
        assert!(report.ok, "{report}");
        assert_eq!(report.custody_entries, 27);

        // A cut-short last line: the next record starts a fresh line and chains from it.
        let mut data = fs::read(dir.join(CUSTODY)).unwrap();
        data.truncate(data.len() - 10);
        fs::write(dir.join(CUSTODY), &data).unwrap();
        record(&dir, &keys, "t", "report", json!({})).unwrap();
        let problems = check(&dir, &keys).problems;
        assert_eq!(problems, vec![Problem::CustodyUnparseable { line: 27 }]);
        let last = custody_lines(&dir).pop().unwrap();
        assert_eq!(parse_line(last.as_bytes()).unwrap().entry.seq, 28);
    }

    #[test]
    fn encrypted_bundle() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, true);
        assert!(keys.aead_key().is_some());
        let dir = sample(&tmp, &keys);
        let m = manifest(&dir);
        assert!(m.encrypted);

        let plain: &[u8] = br#"{"pid":42,"ppid":1}"#;
        let item = dir.join(ITEMS).join("001-process-tree.json");
        let stored = fs::read(&item).unwrap();
        assert_eq!(stored.len(), NONCE_LEN + plain.len() + 16);
        assert!(!stored.windows(plain.len()).any(|w| w == plain));
        assert_eq!(m.items[0].plaintext_sha256, Some(hex(&sha256(plain))));
        let exe = &m.items[2];
        assert_eq!(
            exe.plaintext_sha256,
            Some(hex(&sha256(&source_bytes()[..MAX as usize])))
        );
        assert_eq!(exe.size, MAX + (NONCE_LEN + 16) as u64);

        let report = check(&dir, &keys);
        assert!(report.ok, "{report}");
        // Without the key only the stored bytes are checked, which still passes.
        let no_key = VerifyOptions {
            aead_key: None,
            ..keys.verify_options()
        };
        assert!(verify(&dir, &no_key).unwrap().ok);
        // A wrong key cannot decrypt anything.
        let wrong = VerifyOptions {
            aead_key: Some([7; 32]),
            ..keys.verify_options()
        };
        let problems = verify(&dir, &wrong).unwrap().problems;
        assert_eq!(problems.len(), 3, "{problems:?}");

        flip(&item, NONCE_LEN + 2);
        let problems = check(&dir, &keys).problems;
        let file = "001-process-tree.json".to_owned();
        assert_eq!(
            problems,
            vec![
                Problem::ItemChanged { file: file.clone() },
                Problem::DecryptFailed { file }
            ]
        );
    }

    #[test]
    fn ciphertext_is_bound_to_its_place() {
        let rng = SystemRandom::new();
        let key = [3u8; 32];
        let sealed = encrypt(&rng, &key, &item_aad("b1", "001-a"), b"secret").unwrap();
        assert_eq!(
            decrypt(&key, &item_aad("b1", "001-a"), &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(decrypt(&key, &item_aad("b1", "002-a"), &sealed), None);
        assert_eq!(decrypt(&key, &item_aad("b2", "001-a"), &sealed), None);
        assert_eq!(decrypt(&key, &item_aad("b1", "001-a"), &sealed[..5]), None);
    }

    #[test]
    fn keys_are_stable_and_guarded() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("keys");
        let a = Keys::load_or_create(&dir, true).unwrap();
        let b = Keys::load_or_create(&dir, true).unwrap();
        assert_eq!(a.public(), b.public());
        assert_eq!(a.aead_key(), b.aead_key());
        let pub_path = dir.join(PUBLIC_KEY_FILE);
        assert_eq!(
            fs::read_to_string(&pub_path).unwrap(),
            format!("{}\n", a.public_hex())
        );
        assert_eq!(load_public(&pub_path).unwrap(), a.public());
        assert_eq!(
            load_aead_key(&dir.join(AEAD_KEY_FILE)).unwrap(),
            a.aead_key().unwrap()
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(AEAD_KEY_FILE)), 0o600);
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.aead_key().unwrap())));

        let pk8 = dir.join(SIGNING_KEY_FILE);
        fs::set_permissions(&pk8, Permissions::from_mode(0o644)).unwrap();
        let err = Keys::load_or_create(&dir, false).unwrap_err();
        assert!(matches!(
            err,
            BundleError::InsecureKeyFile { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains(SIGNING_KEY_FILE), "{err}");

        fs::set_permissions(&pk8, Permissions::from_mode(0o600)).unwrap();
        fs::write(&pk8, b"not a key").unwrap();
        let err = Keys::load_or_create(&dir, false).unwrap_err();
        assert!(matches!(err, BundleError::MalformedKey { .. }), "{err:?}");
        assert!(err.to_string().contains(SIGNING_KEY_FILE), "{err}");

        let aead = dir.join(AEAD_KEY_FILE);
        fs::write(&aead, [0u8; 31]).unwrap();
        let err = load_aead_key(&aead).unwrap_err();
        assert!(err.to_string().contains("expected 32 bytes"), "{err}");

        fs::write(&pub_path, "xyz\n").unwrap();
        assert!(matches!(
            load_public(&pub_path),
            Err(BundleError::MalformedKey { .. })
        ));
    }

    #[test]
    fn public_key_file_must_match() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("keys");
        Keys::load_or_create(&dir, false).unwrap();
        fs::write(dir.join(PUBLIC_KEY_FILE), format!("{}\n", hex(&[1; 32]))).unwrap();
        let err = Keys::load_or_create(&dir, false).unwrap_err();
        assert!(
            matches!(err, BundleError::PublicKeyMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn names_are_validated() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let root = tmp.path().join("evidence");
        let long = "x".repeat(129);
        for bad in [
            "../x",
            "",
            ".hidden",
            "a/b",
            "..",
            "a b",
            "é",
            long.as_str(),
        ] {
            let err = BundleWriter::create(&root, bad, json!({}), "t", &keys).err();
            assert!(
                matches!(
                    err,
                    Some(BundleError::InvalidName {
                        what: "bundle id",
                        ..
                    })
                ),
                "{bad:?}: {err:?}"
            );
        }
        assert!(!root.join("x").exists());
        let mut w = BundleWriter::create(&root, "ok_1.2-3", json!({}), "t", &keys).unwrap();
        for bad in ["../x", "", ".hidden", "a/b", long.as_str()] {
            let err = w.add(bad, "k", b"").err();
            assert!(
                matches!(
                    err,
                    Some(BundleError::InvalidName {
                        what: "item name",
                        ..
                    })
                ),
                "{bad:?}: {err:?}"
            );
        }
        assert!(w.add(&"y".repeat(128), "k", b"").is_ok());
    }

    #[test]
    fn unreadable_sources_fail_clearly() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let mut w =
            BundleWriter::create(&tmp.path().join("ev"), "b", json!({}), "t", &keys).unwrap();
        let gone = tmp.path().join("gone");
        let err = w.add_file("exe.bin", "executable", &gone, 10).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        let err = w
            .add_file("exe.bin", "executable", tmp.path(), 10)
            .unwrap_err();
        assert!(matches!(err, BundleError::NotRegularFile { .. }), "{err:?}");
        // Failed items take no sequence number; the bundle carries on.
        let item = w.add("exe.bin", "executable", b"x").unwrap();
        assert_eq!(item.seq, 1);
        let dir = w.seal("t").unwrap();
        assert!(check(&dir, &keys).ok);
    }

    #[test]
    fn not_a_bundle() {
        let tmp = TempDir::new().unwrap();
        let keys = keys(&tmp, false);
        let err = verify(tmp.path(), &keys.verify_options()).unwrap_err();
        assert!(matches!(err, BundleError::NotABundle { .. }));
        let err = record(tmp.path(), &keys, "t", "verify", json!({})).unwrap_err();
        assert!(matches!(err, BundleError::NotABundle { .. }), "{err:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn garbage_manifest_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..600)) {
            let tmp = TempDir::new().unwrap();
            let keys = keys(&tmp, false);
            let dir = sample(&tmp, &keys);
            fs::write(dir.join(MANIFEST), &garbage).unwrap();
            for opts in [keys.verify_options(), VerifyOptions::default()] {
                let report = verify(&dir, &opts).unwrap();
                prop_assert!(!report.ok);
                let _ = report.to_string();
            }
        }

        #[test]
        fn garbage_custody_never_panics(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)
        ) {
            let tmp = TempDir::new().unwrap();
            let keys = keys(&tmp, false);
            let dir = sample(&tmp, &keys);
            fs::write(dir.join(CUSTODY), lines.join(&b'\n')).unwrap();
            let report = verify(&dir, &keys.verify_options()).unwrap();
            prop_assert!(!report.ok);
            // Appending to a garbage log works, and the log still does not verify.
            record(&dir, &keys, "t", "verify", json!({})).unwrap();
            prop_assert!(!verify(&dir, &keys.verify_options()).unwrap().ok);
        }

        #[test]
        fn any_flipped_byte_is_detected(which in 0..2usize, at in any::<prop::sample::Index>(), bit in 0..8u8) {
            let tmp = TempDir::new().unwrap();
            let keys = keys(&tmp, false);
            let dir = sample(&tmp, &keys);
            let path = dir.join([MANIFEST, CUSTODY][which]);
            let mut bytes = fs::read(&path).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            fs::write(&path, &bytes).unwrap();
            let report = verify(&dir, &keys.verify_options()).unwrap();
            prop_assert!(!report.ok, "flip at {} of {}", i, path.display());
        }
    }
}
