//! The signed bundle format: a directory of rule, indicator or profile files with a manifest
//! naming each file's SHA-256 and a detached Ed25519 signature over the manifest's bytes.
//!
//! ```text
//! <dir>/*                        the content: every file in the directory (not recursive)
//! <dir>/sensor-bundle.json       {format, kind, name, version, created, files: {name: sha256}}
//! <dir>/sensor-bundle.json.sig   {key_id, signature}: hex Ed25519 over the manifest's bytes
//! ```
//!
//! Keys follow the evidence bundles' conventions (`respond::bundle`): the secret key is
//! PKCS#8 v2 in a 0600 file, the public key 64 lowercase hex digits. Everything read from a
//! bundle is hostile: sizes are capped, nothing panics, and each error names the file.

use std::{
    collections::BTreeMap,
    fmt,
    fs::{self, DirBuilder, File, Permissions},
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use ring::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::ioc::hashes::{hex, sha256_file, unhex};

/// The manifest, in the bundle's directory.
pub const MANIFEST: &str = "sensor-bundle.json";
/// The detached signature over the manifest's bytes.
pub const SIGNATURE: &str = "sensor-bundle.json.sig";
/// `sensor bundle keygen` writes these into its output directory.
pub const PRIVATE_KEY_FILE: &str = "bundle-signing.pk8";
pub const PUBLIC_KEY_FILE: &str = "bundle-signing.pub";
/// Format version written into (and required of) every manifest.
pub const FORMAT: u32 = 1;

/// Real manifests are a few KiB; anything bigger is refused before parsing.
const MAX_MANIFEST: u64 = 1 << 20;
const MAX_SIGNATURE: u64 = 4096;
const MAX_FILES: usize = 10_000;
const MAX_NAME: usize = 128;
/// Hex digits of the key's SHA-256 that identify it: enough to tell keys apart, short to read.
const KEY_ID_LEN: usize = 16;

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
        "{}: missing signature (the bundle was never signed, or its signature was removed)",
        path.display()
    )]
    MissingSignature { path: PathBuf },
    #[error("{}: missing manifest (a signature without {MANIFEST})", path.display())]
    MissingManifest { path: PathBuf },
    #[error("{}: larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{}: malformed signature file: {reason}", path.display())]
    MalformedSignature { path: PathBuf, reason: String },
    #[error("{}: malformed manifest: {reason}", path.display())]
    MalformedManifest { path: PathBuf, reason: String },
    #[error(
        "{}: signed by key {key_id}, which is not trusted (trusted: {trusted})",
        path.display()
    )]
    UntrustedKey {
        path: PathBuf,
        key_id: String,
        trusted: String,
    },
    #[error(
        "{}: signature invalid for key {key_id}: the manifest was changed after signing",
        path.display()
    )]
    BadSignature { path: PathBuf, key_id: String },
    #[error(
        "{}: content differs from the signed manifest (sha256 {found}, signed {expected})",
        path.display()
    )]
    Changed {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: not listed in the signed manifest (added after signing?)", path.display())]
    Unlisted { path: PathBuf },
    #[error("{}: listed in the signed manifest but missing", path.display())]
    Missing { path: PathBuf },
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: not a directory (a bundle is a directory of files)", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{}: nothing to sign (no files)", path.display())]
    Empty { path: PathBuf },
    #[error("{}: a {found} bundle, used here as {expected}", path.display())]
    WrongKind {
        path: PathBuf,
        found: Kind,
        expected: Kind,
    },
    #[error(
        "{}: {kind} bundle {name:?} is already at version {current}; version {requested} must be \
         greater (--force to sign it anyway)",
        path.display()
    )]
    NotNewer {
        path: PathBuf,
        kind: Kind,
        name: String,
        current: u64,
        requested: u64,
    },
    #[error("invalid bundle name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{}: refusing to overwrite an existing key", path.display())]
    KeyExists { path: PathBuf },
    #[error("{}: malformed key: {reason}", path.display())]
    MalformedKey { path: PathBuf, reason: String },
    #[error(transparent)]
    Key(#[from] crate::respond::bundle::BundleError),
    #[error("{what} failed")]
    Crypto { what: &'static str },
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

/// What a bundle holds; a bundle is only accepted where its kind is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Rules,
    Ioc,
    Profiles,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rules => "rules",
            Kind::Ioc => "ioc",
            Kind::Profiles => "profiles",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub kind: Kind,
    pub name: String,
    /// Monotonic per (kind, name): a host refuses a version below one it accepted.
    pub version: u64,
    /// RFC 3339, when it was signed (informative; replay protection uses `version`).
    pub created: String,
    /// File name → lowercase hex SHA-256.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    key_id: String,
    /// Lowercase hex of the 64-byte Ed25519 signature over the manifest's bytes.
    signature: String,
}

/// The id of a public key: the first hex digits of its SHA-256.
pub fn key_id(public: &[u8; 32]) -> String {
    let mut id = hex(&Sha256::digest(public));
    id.truncate(KEY_ID_LEN);
    id
}

/// A trusted public key and where it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub id: String,
    pub path: PathBuf,
    key: [u8; 32],
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<PublicKey, BundleError> {
        let key = crate::respond::bundle::load_public(path)?;
        Ok(PublicKey {
            id: key_id(&key),
            path: path.to_owned(),
            key,
        })
    }
}

/// A secret signing key (only `sensor bundle sign` loads one).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub id: String,
}

impl SigningKey {
    /// Reads a PKCS#8 key file; like the evidence keys it must be 0600 and not a symlink.
    pub fn load(path: &Path) -> Result<SigningKey, BundleError> {
        let bytes = crate::respond::bundle::read_secret(path)?
            .ok_or_else(|| io_err("read", path)(io::ErrorKind::NotFound.into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| BundleError::MalformedKey {
            path: path.to_owned(),
            reason: format!("not an Ed25519 PKCS#8 v2 key ({e})"),
        })?;
        let public: [u8; 32] =
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| BundleError::MalformedKey {
                    path: path.to_owned(),
                    reason: "public key is not 32 bytes".into(),
                })?;
        Ok(SigningKey {
            id: key_id(&public),
            pair,
        })
    }
}

/// Writes a new key pair into `dir` (created 0700): the secret 0600, the public 0644. Never
/// replaces a key. Returns the key id.
pub fn keygen(dir: &Path) -> Result<String, BundleError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create", dir))?;
    let (secret, public) = (dir.join(PRIVATE_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
    for p in [&secret, &public] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(BundleError::KeyExists { path: p.clone() });
        }
    }
    let pk8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| BundleError::Crypto {
            what: "generating the signing key",
        })?;
    let pair = Ed25519KeyPair::from_pkcs8(pk8.as_ref()).map_err(|_| BundleError::Crypto {
        what: "reading the new signing key",
    })?;
    let pub_bytes: [u8; 32] =
        pair.public_key()
            .as_ref()
            .try_into()
            .map_err(|_| BundleError::Crypto {
                what: "reading the new public key",
            })?;
    let exclusive = |path: &Path, bytes: &[u8], mode| {
        crate::respond::bundle::create_exclusive(path, bytes, mode).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                BundleError::KeyExists {
                    path: path.to_owned(),
                }
            } else {
                io_err("create", path)(e)
            }
        })
    };
    exclusive(&secret, pk8.as_ref(), 0o600)?;
    exclusive(&public, format!("{}\n", hex(&pub_bytes)).as_bytes(), 0o644)?;
    Ok(key_id(&pub_bytes))
}

/// Why `name` is not a valid bundle name: `[A-Za-z0-9._-]`, 1..=128, not hidden. It names the
/// bundle in the replay record and in messages.
fn check_name(name: &str) -> Result<(), BundleError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME {
        Some("longer than 128 characters")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Some("only letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BundleError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// True when `path` is a bundle's manifest or signature (loaders skip them).
pub fn is_bundle_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == MANIFEST || n == SIGNATURE)
}

/// True when `dir` carries a manifest or a signature: then it must verify.
pub fn is_signed(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MANIFEST)).is_ok()
        || fs::symlink_metadata(dir.join(SIGNATURE)).is_ok()
}

/// The bundle's content: every entry of `dir` except sub-directories and the manifest and
/// signature. Stricter than any loader (an unexpected file of any kind is refused), so no
/// loader can read a file the signer did not see.
fn members(dir: &Path) -> Result<BTreeMap<String, PathBuf>, BundleError> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        if is_bundle_file(&path) || fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        // A name the manifest cannot spell can never be listed.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(BundleError::Unlisted { path });
        };
        out.insert(name, path);
    }
    Ok(out)
}

fn hash_regular(path: &Path) -> Result<[u8; 32], BundleError> {
    // Checked first: hashing a FIFO would block.
    if !fs::metadata(path).map_err(io_err("stat", path))?.is_file() {
        return Err(BundleError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(sha256_file(path).map_err(io_err("read", path))?.0)
}

/// Reads at most `max` bytes; more is an error, not a truncation. `None` if absent.
fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, BundleError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() as u64 > max {
        return Err(BundleError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(Some(bytes))
}

fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, BundleError> {
    let malformed = |reason: String| BundleError::MalformedManifest {
        path: path.to_owned(),
        reason,
    };
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if m.format != FORMAT {
        return Err(malformed(format!(
            "format {} is not supported (this sensor reads format {FORMAT})",
            m.format
        )));
    }
    check_name(&m.name)?;
    if m.files.len() > MAX_FILES {
        return Err(malformed(format!("more than {MAX_FILES} files")));
    }
    if let Some((name, _)) = m
        .files
        .iter()
        .find(|(_, h)| unhex::<32>(h.as_bytes()).is_none())
    {
        return Err(malformed(format!(
            "{name:?}: the hash is not 64 lowercase hex digits"
        )));
    }
    Ok(m)
}

/// A bundle that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub key_id: String,
    /// SHA-256 of the manifest's bytes: which exact signed manifest was accepted.
    pub manifest_sha256: String,
}

/// Checks `dir` against `trusted`: the signature is by one of them over the manifest's exact
/// bytes, every listed file is present with its hash, nothing else is in the directory, and
/// the kind is `expect` (when given). Replay is the caller's concern (`signing::replay`).
pub fn verify(
    dir: &Path,
    trusted: &[PublicKey],
    expect: Option<Kind>,
) -> Result<Verified, BundleError> {
    if !dir.is_dir() {
        return Err(BundleError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let (manifest_path, sig_path) = (dir.join(MANIFEST), dir.join(SIGNATURE));
    let sig_bytes =
        read_capped(&sig_path, MAX_SIGNATURE)?.ok_or_else(|| BundleError::MissingSignature {
            path: sig_path.clone(),
        })?;
    let manifest_bytes =
        read_capped(&manifest_path, MAX_MANIFEST)?.ok_or_else(|| BundleError::MissingManifest {
            path: manifest_path.clone(),
        })?;

    let malformed_sig = |reason: String| BundleError::MalformedSignature {
        path: sig_path.clone(),
        reason,
    };
    let sig: SignatureFile =
        serde_json::from_slice(&sig_bytes).map_err(|e| malformed_sig(e.to_string()))?;
    let signature = unhex::<64>(sig.signature.as_bytes()).ok_or_else(|| {
        malformed_sig("\"signature\" is not 128 lowercase hex digits (64 bytes)".into())
    })?;
    let Some(key) = trusted.iter().find(|k| k.id == sig.key_id) else {
        let list: Vec<&str> = trusted.iter().map(|k| k.id.as_str()).collect();
        return Err(BundleError::UntrustedKey {
            path: sig_path,
            key_id: crate::escape::escape_str(&sig.key_id, 64),
            trusted: if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            },
        });
    };
    UnparsedPublicKey::new(&ED25519, key.key)
        .verify(&manifest_bytes, &signature)
        .map_err(|_| BundleError::BadSignature {
            path: manifest_path.clone(),
            key_id: key.id.clone(),
        })?;

    // Signed by a trusted key from here on; still checked, as signers make mistakes too.
    let manifest = parse_manifest(&manifest_path, &manifest_bytes)?;
    if let Some(expected) = expect
        && manifest.kind != expected
    {
        return Err(BundleError::WrongKind {
            path: dir.to_owned(),
            found: manifest.kind,
            expected,
        });
    }
    let present = members(dir)?;
    if let Some(path) = present
        .iter()
        .find(|(name, _)| !manifest.files.contains_key(*name))
        .map(|(_, p)| p.clone())
    {
        return Err(BundleError::Unlisted { path });
    }
    for (name, signed) in &manifest.files {
        let Some(path) = present.get(name) else {
            return Err(BundleError::Missing {
                path: dir.join(name),
            });
        };
        let found = hex(&hash_regular(path)?);
        if &found != signed {
            return Err(BundleError::Changed {
                path: path.clone(),
                expected: signed.clone(),
                found,
            });
        }
    }
    Ok(Verified {
        dir: dir.to_owned(),
        manifest,
        key_id: key.id.clone(),
        manifest_sha256: hex(&Sha256::digest(&manifest_bytes)),
    })
}

/// What to sign.
pub struct SignRequest<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub version: u64,
    /// Sign even when the version is not above the current manifest's.
    pub force: bool,
}

/// Writes `dir`'s manifest and signature for every file now in it. Refuses a version not
/// above the current manifest's (same kind and name) unless forced: hosts that accepted the
/// current one would refuse it as a replay.
pub fn sign(dir: &Path, key: &SigningKey, req: &SignRequest<'_>) -> Result<Manifest, BundleError> {
    check_name(req.name)?;
    if !dir.is_dir() {
        return Err(BundleError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let manifest_path = dir.join(MANIFEST);
    if !req.force
        && let Some(bytes) = read_capped(&manifest_path, MAX_MANIFEST)?
    {
        let current = parse_manifest(&manifest_path, &bytes)?;
        if current.kind == req.kind && current.name == req.name && req.version <= current.version {
            return Err(BundleError::NotNewer {
                path: manifest_path,
                kind: req.kind,
                name: req.name.to_owned(),
                current: current.version,
                requested: req.version,
            });
        }
    }
    let mut files = BTreeMap::new();
    for (name, path) in members(dir)? {
        files.insert(name, hex(&hash_regular(&path)?));
    }
    if files.is_empty() {
        return Err(BundleError::Empty {
            path: dir.to_owned(),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        kind: req.kind,
        name: req.name.to_owned(),
        version: req.version,
        created: OffsetDateTime::now_utc().format(&Rfc3339)?,
        files,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|_| BundleError::Crypto {
        what: "encoding the manifest",
    })?;
    bytes.push(b'\n');
    let sig = SignatureFile {
        key_id: key.id.clone(),
        signature: hex(key.pair.sign(&bytes).as_ref()),
    };
    let mut sig_bytes = serde_json::to_vec(&sig).map_err(|_| BundleError::Crypto {
        what: "encoding the signature",
    })?;
    sig_bytes.push(b'\n');
    replace(&manifest_path, &bytes)?;
    replace(&dir.join(SIGNATURE), &sig_bytes)?;
    Ok(manifest)
}

/// Replaces `path` atomically (a reader sees the old or the new file, never half of one).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io_err("create a file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err("sync", path))?;
    tmp.persist(path)
        .map_err(|e| io_err("replace", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    struct Fixture {
        _tmp: TempDir,
        dir: PathBuf,
        key: SigningKey,
        public: PublicKey,
        keys: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let keys = tmp.path().join("keys");
        let id = keygen(&keys).unwrap();
        let key = SigningKey::load(&keys.join(PRIVATE_KEY_FILE)).unwrap();
        let public = PublicKey::load(&keys.join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(
            (key.id.as_str(), public.id.as_str()),
            (id.as_str(), id.as_str())
        );
        let dir = tmp.path().join("rules");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a.yaml"), "- rule: a\n").unwrap();
        fs::write(dir.join("b.yml"), "- rule: b\n").unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            key,
            public,
            keys,
        }
    }

    fn req(version: u64) -> SignRequest<'static> {
        SignRequest {
            kind: Kind::Rules,
            name: "corp",
            version,
            force: false,
        }
    }

    impl Fixture {
        fn sign(&self, version: u64) -> Manifest {
            sign(&self.dir, &self.key, &req(version)).unwrap()
        }
        fn verify(&self) -> Result<Verified, BundleError> {
            verify(
                &self.dir,
                std::slice::from_ref(&self.public),
                Some(Kind::Rules),
            )
        }
        fn err(&self) -> (BundleError, String) {
            let e = self.verify().unwrap_err();
            let s = e.to_string();
            (e, s)
        }
    }

    #[test]
    fn good_bundle_verifies() {
        let f = fixture();
        let m = f.sign(3);
        assert_eq!(m.files.len(), 2);
        let v = f.verify().unwrap();
        assert_eq!(v.manifest, m);
        assert_eq!(v.key_id, f.public.id);
        assert_eq!(v.manifest.version, 3);
        assert_eq!(
            v.manifest.files["a.yaml"],
            hex(&Sha256::digest(b"- rule: a\n"))
        );
        // Any kind is fine when the caller does not say.
        verify(&f.dir, std::slice::from_ref(&f.public), None).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.keys.join(PRIVATE_KEY_FILE)), 0o600);
        assert_eq!(mode(&f.keys), 0o700);
    }

    #[test]
    fn tampered_file_is_named() {
        let f = fixture();
        f.sign(1);
        fs::write(f.dir.join("b.yml"), "- rule: evil\n").unwrap();
        let (e, s) = f.err();
        assert!(matches!(e, BundleError::Changed { .. }), "{e:?}");
        assert!(s.contains("b.yml") && s.contains("differs"), "{s}");
    }

    #[test]
    fn added_file_is_refused() {
        let f = fixture();
        f.sign(1);
        fs::write(f.dir.join("extra.yaml"), "- rule: x\n").unwrap();
        let (e, s) = f.err();
        assert!(matches!(e, BundleError::Unlisted { .. }), "{e:?}");
        assert!(s.contains("extra.yaml") && s.contains("not listed"), "{s}");
        // Any file, not only rule files: a loader might read it.
        fs::remove_file(f.dir.join("extra.yaml")).unwrap();
        fs::write(f.dir.join(".hidden"), "x").unwrap();
        assert!(matches!(f.err().0, BundleError::Unlisted { .. }));
        // Sub-directories are not content (no loader recurses).
        fs::remove_file(f.dir.join(".hidden")).unwrap();
        fs::create_dir(f.dir.join("sub")).unwrap();
        f.verify().unwrap();
    }

    #[test]
    fn removed_file_is_refused() {
        let f = fixture();
        f.sign(1);
        fs::remove_file(f.dir.join("a.yaml")).unwrap();
        let (e, s) = f.err();
        assert!(matches!(e, BundleError::Missing { .. }), "{e:?}");
        assert!(s.contains("a.yaml") && s.contains("missing"), "{s}");
    }

    #[test]
    fn listed_entry_that_became_a_directory_is_refused() {
        let f = fixture();
        f.sign(1);
        fs::remove_file(f.dir.join("a.yaml")).unwrap();
        fs::create_dir(f.dir.join("a.yaml")).unwrap();
        assert!(matches!(f.err().0, BundleError::Missing { .. }));
    }

    #[test]
    fn edited_manifest_breaks_the_signature() {
        let f = fixture();
        f.sign(1);
        let path = f.dir.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1,"));
        fs::write(&path, text.replace("\"version\": 1,", "\"version\": 9,")).unwrap();
        let (e, s) = f.err();
        assert!(matches!(e, BundleError::BadSignature { .. }), "{e:?}");
        assert!(
            s.contains(MANIFEST) && s.contains("changed after signing"),
            "{s}"
        );
        // Even a whitespace change: the signature covers the exact bytes.
        fs::write(&path, format!("{text} ")).unwrap();
        assert!(matches!(f.err().0, BundleError::BadSignature { .. }));
    }

    #[test]
    fn untrusted_key_is_refused() {
        let f = fixture();
        f.sign(1);
        let other = fixture();
        let e = verify(&f.dir, std::slice::from_ref(&other.public), None).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, BundleError::UntrustedKey { .. }), "{e:?}");
        assert!(s.contains(&f.key.id) && s.contains(&other.public.id), "{s}");
        let e = verify(&f.dir, &[], None).unwrap_err();
        assert!(e.to_string().contains("trusted: none"), "{e}");
        // A forged key id does not help: the signature is checked with the named key.
        let sig = fs::read_to_string(f.dir.join(SIGNATURE)).unwrap();
        fs::write(
            f.dir.join(SIGNATURE),
            sig.replace(&f.key.id, &other.public.id),
        )
        .unwrap();
        let e = verify(&f.dir, std::slice::from_ref(&other.public), None).unwrap_err();
        assert!(matches!(e, BundleError::BadSignature { .. }), "{e:?}");
    }

    #[test]
    fn missing_signature_or_manifest() {
        let f = fixture();
        let (e, _) = f.err();
        assert!(matches!(e, BundleError::MissingSignature { .. }), "{e:?}");
        f.sign(1);
        fs::remove_file(f.dir.join(SIGNATURE)).unwrap();
        let (e, s) = f.err();
        assert!(matches!(e, BundleError::MissingSignature { .. }), "{e:?}");
        assert!(s.contains(SIGNATURE), "{s}");
        f.sign(2);
        fs::remove_file(f.dir.join(MANIFEST)).unwrap();
        assert!(matches!(f.err().0, BundleError::MissingManifest { .. }));
    }

    #[test]
    fn garbled_signature_files_are_clear_errors() {
        let f = fixture();
        f.sign(1);
        let good: serde_json::Value =
            serde_json::from_slice(&fs::read(f.dir.join(SIGNATURE)).unwrap()).unwrap();
        let id = good["key_id"].as_str().unwrap().to_owned();
        let sig = good["signature"].as_str().unwrap().to_owned();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "malformed signature"),
            (b"not json".to_vec(), "malformed signature"),
            (b"\xff\xfe\x00".to_vec(), "malformed signature"),
            (b"[]".to_vec(), "malformed signature"),
            (
                format!(r#"{{"key_id":"{id}"}}"#).into_bytes(),
                "missing field",
            ),
            (
                format!(r#"{{"key_id":"{id}","signature":"{sig}","x":1}}"#).into_bytes(),
                "unknown field",
            ),
            (
                format!(r#"{{"key_id":"{id}","signature":"{}"}}"#, &sig[..126]).into_bytes(),
                "128 lowercase hex",
            ),
            (
                format!(r#"{{"key_id":"{id}","signature":"{sig}00"}}"#).into_bytes(),
                "128 lowercase hex",
            ),
            (
                format!(
                    r#"{{"key_id":"{id}","signature":"{}"}}"#,
                    sig.to_uppercase()
                )
                .into_bytes(),
                "128 lowercase hex",
            ),
            (
                format!(r#"{{"key_id":"{id}","signature":"{}"}}"#, "zz".repeat(64)).into_bytes(),
                "128 lowercase hex",
            ),
            (
                format!(r#"{{"key_id":"{id}x","signature":"{sig}"}}"#).into_bytes(),
                "not trusted",
            ),
            (
                format!(
                    r#"{{"key_id":"{}","signature":"{sig}"}}"#,
                    r"\u001b[31m".repeat(3)
                )
                .into_bytes(),
                "not trusted",
            ),
            (vec![b' '; MAX_SIGNATURE as usize + 1], "larger than"),
        ];
        for (bytes, says) in cases {
            fs::write(f.dir.join(SIGNATURE), &bytes).unwrap();
            let (_, s) = f.err();
            assert!(
                s.contains(says),
                "{:?}: {s}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(!s.contains('\u{1b}'), "escaped: {s:?}");
        }
    }

    /// A trusted signer's garbled manifest: a clear error, never a panic.
    #[test]
    fn garbled_manifests_signed_by_a_trusted_key_are_clear_errors() {
        let f = fixture();
        let h = hex(&Sha256::digest(b"x"));
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "malformed manifest"),
            ("null".into(), "malformed manifest"),
            (
                r#"{"format":2,"kind":"rules","name":"n","version":1,"created":"","files":{}}"#
                    .into(),
                "format 2 is not supported",
            ),
            (
                r#"{"format":1,"kind":"bogus","name":"n","version":1,"created":"","files":{}}"#
                    .into(),
                "unknown variant",
            ),
            (
                r#"{"format":1,"kind":"rules","name":"n","version":-1,"created":"","files":{}}"#
                    .into(),
                "malformed manifest",
            ),
            (
                r#"{"format":1,"kind":"rules","name":"../x","version":1,"created":"","files":{}}"#
                    .into(),
                "invalid bundle name",
            ),
            (
                format!(
                    r#"{{"format":1,"kind":"rules","name":"n","version":1,"created":"","files":{{"a.yaml":"{}"}}}}"#,
                    h.to_uppercase()
                ),
                "not 64 lowercase hex",
            ),
            (
                r#"{"format":1,"kind":"rules","name":"n","version":1,"created":"","files":{"a.yaml":"00"}}"#
                    .into(),
                "not 64 lowercase hex",
            ),
            (
                format!(
                    r#"{{"format":1,"kind":"rules","name":"n","version":1,"created":"","files":{{"a.yaml":"{h}"}},"extra":1}}"#
                ),
                "unknown field",
            ),
            (" ".repeat(MAX_MANIFEST as usize + 1), "larger than"),
        ];
        for (text, says) in cases {
            let bytes = text.as_bytes();
            fs::write(f.dir.join(MANIFEST), bytes).unwrap();
            let sig = SignatureFile {
                key_id: f.key.id.clone(),
                signature: hex(f.key.pair.sign(bytes).as_ref()),
            };
            fs::write(f.dir.join(SIGNATURE), serde_json::to_vec(&sig).unwrap()).unwrap();
            let (_, s) = f.err();
            assert!(s.contains(says), "{}: {s}", &text[..text.len().min(80)]);
        }
    }

    #[test]
    fn kind_mismatch_is_refused() {
        let f = fixture();
        f.sign(1);
        let e = verify(&f.dir, std::slice::from_ref(&f.public), Some(Kind::Ioc)).unwrap_err();
        assert!(matches!(e, BundleError::WrongKind { .. }), "{e:?}");
        assert!(
            e.to_string().contains("a rules bundle, used here as ioc"),
            "{e}"
        );
    }

    #[test]
    fn sign_refuses_an_older_or_equal_version_unless_forced() {
        let f = fixture();
        f.sign(5);
        for v in [5, 4] {
            let e = sign(&f.dir, &f.key, &req(v)).unwrap_err();
            let s = e.to_string();
            assert!(matches!(e, BundleError::NotNewer { .. }), "{e:?}");
            assert!(
                s.contains("version 5") && s.contains(&format!("{v} must be")),
                "{s}"
            );
        }
        // The failed attempts left the signed bundle as it was.
        assert_eq!(f.verify().unwrap().manifest.version, 5);
        sign(
            &f.dir,
            &f.key,
            &SignRequest {
                force: true,
                ..req(4)
            },
        )
        .unwrap();
        assert_eq!(f.verify().unwrap().manifest.version, 4);
        // Another bundle name starts its own sequence.
        sign(
            &f.dir,
            &f.key,
            &SignRequest {
                name: "other",
                ..req(1)
            },
        )
        .unwrap();
        f.sign(6);
        // No temporary files left behind to trip the unlisted-file check.
        assert_eq!(fs::read_dir(&f.dir).unwrap().count(), 4);
    }

    #[test]
    fn sign_refuses_bad_input() {
        let f = fixture();
        for name in ["", ".x", "a/b", "a b", &"n".repeat(129)] {
            let e = sign(&f.dir, &f.key, &SignRequest { name, ..req(1) }).unwrap_err();
            assert!(
                matches!(e, BundleError::InvalidName { .. }),
                "{name:?}: {e:?}"
            );
        }
        let empty = f.dir.join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(matches!(
            sign(&empty, &f.key, &req(1)).unwrap_err(),
            BundleError::Empty { .. }
        ));
        assert!(matches!(
            sign(&f.dir.join("a.yaml"), &f.key, &req(1)).unwrap_err(),
            BundleError::NotADirectory { .. }
        ));
    }

    #[test]
    fn keys_are_never_overwritten_and_guarded() {
        let f = fixture();
        let e = keygen(&f.keys).unwrap_err();
        assert!(matches!(e, BundleError::KeyExists { .. }), "{e:?}");
        let secret = f.keys.join(PRIVATE_KEY_FILE);
        fs::set_permissions(&secret, Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load(&secret).err().unwrap();
        assert!(e.to_string().contains("0600"), "{e}");
        fs::set_permissions(&secret, Permissions::from_mode(0o600)).unwrap();
        fs::write(&secret, b"garbage").unwrap();
        let e = SigningKey::load(&secret).err().unwrap();
        assert!(e.to_string().contains("PKCS#8"), "{e}");
        let public = f.keys.join(PUBLIC_KEY_FILE);
        fs::write(&public, "abc\n").unwrap();
        let e = PublicKey::load(&public).unwrap_err();
        assert!(e.to_string().contains("64 lowercase hex"), "{e}");
        let e = PublicKey::load(&f.keys.join("absent.pub")).unwrap_err();
        assert!(e.to_string().contains("absent.pub"), "{e}");
    }
}
