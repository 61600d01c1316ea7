//! Signed rule, indicator and profile bundles, and the policy that decides which of them a
//! process accepts.
//!
//! - `bundle`: the format (manifest + detached Ed25519 signature), keys, sign and verify;
//! - `replay`: the highest version accepted per bundle, kept in the state directory.
//!
//! [`Gate::admit`] runs before a loader reads a configured path: with `require = true` every
//! path must lie in a signed bundle; without it, an unsigned path passes but a signed one must
//! still verify (a bad signature is never ignored).

pub mod bundle;
pub mod replay;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use bundle::{Kind, Manifest, PublicKey, Verified};

/// `[signing]` in the config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Every rules path, IOC path and `sensor exec` profile must be in a signed bundle.
    pub require: bool,
    /// Public key files (`bundle-signing.pub`); a bundle signed by any of them is trusted.
    pub trusted_keys: Vec<PathBuf>,
}

impl SigningConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.require && self.trusted_keys.is_empty() {
            return Err((
                "signing.trusted_keys",
                "require = true needs at least one trusted public key".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(
        "{}: not in a signed bundle (no {} in {}), and [signing] require = true",
        path.display(), bundle::MANIFEST, dir.display()
    )]
    Unsigned { path: PathBuf, dir: PathBuf },
    #[error("{}: not listed in the signed bundle {}", path.display(), dir.display())]
    NotInBundle { path: PathBuf, dir: PathBuf },
    #[error(
        "{}: the bundle is signed, but [signing] trusted_keys is empty: add its signer's \
         public key to check it",
        dir.display()
    )]
    NoTrustedKeys { dir: PathBuf },
}

/// Whether failing to record an accepted version stops the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The agent: it owns the state directory.
    Required,
    /// `sensor exec`, often run without write access to the agent's state: the version is
    /// still checked when the record is readable, and raised when writable.
    BestEffort,
}

/// The signing policy of one process: its trusted keys and replay record.
#[derive(Debug, Clone)]
pub struct Gate {
    require: bool,
    keys: Vec<PublicKey>,
    versions: replay::Versions,
    record: Record,
}

impl Gate {
    /// Loads the trusted keys (an unreadable or malformed key file is an error naming it).
    pub fn new(
        cfg: &SigningConfig,
        state_dir: &Path,
        record: Record,
    ) -> Result<Gate, SigningError> {
        let keys = cfg
            .trusted_keys
            .iter()
            .map(|p| PublicKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Gate {
            require: cfg.require,
            keys,
            versions: replay::Versions::new(state_dir),
            record,
        })
    }

    pub fn required(&self) -> bool {
        self.require
    }

    /// Checks the bundles behind `paths` (a directory is a bundle; a file belongs to its
    /// directory's) before a loader reads them. Returns the bundles that verified.
    pub fn admit(&self, kind: Kind, paths: &[PathBuf]) -> Result<Vec<Verified>, SigningError> {
        let mut verified: Vec<Verified> = Vec::new();
        for path in paths {
            let (dir, file) = if path.is_dir() {
                (path.clone(), None)
            } else {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => PathBuf::from("."),
                };
                (dir, path.file_name())
            };
            if !bundle::is_signed(&dir) {
                if self.require {
                    return Err(SigningError::Unsigned {
                        path: path.clone(),
                        dir,
                    });
                }
                continue;
            }
            if self.keys.is_empty() {
                return Err(SigningError::NoTrustedKeys { dir });
            }
            let v = match verified.iter().position(|v| v.dir == dir) {
                Some(i) => &verified[i],
                None => {
                    let v = bundle::verify(&dir, &self.keys, Some(kind))?;
                    self.record(&v)?;
                    tracing::info!(
                        dir = %dir.display(),
                        %kind,
                        name = %v.manifest.name,
                        version = v.manifest.version,
                        key = %v.key_id,
                        "signed bundle verified"
                    );
                    verified.push(v);
                    &verified[verified.len() - 1]
                }
            };
            if let Some(name) = file
                && !name
                    .to_str()
                    .is_some_and(|n| v.manifest.files.contains_key(n))
            {
                return Err(SigningError::NotInBundle {
                    path: path.clone(),
                    dir,
                });
            }
        }
        Ok(verified)
    }

    fn record(&self, v: &Verified) -> Result<(), SigningError> {
        match (self.versions.admit(v), self.record) {
            (Ok(()), _) => Ok(()),
            (Err(replay::ReplayError::Io { .. }), Record::BestEffort) => {
                match self.versions.check_only(v) {
                    Ok(()) => Ok(()),
                    Err(replay::ReplayError::Io { path, source, .. }) => {
                        tracing::warn!(
                            path = %path.display(),
                            error = %source,
                            "cannot read the accepted bundle versions; replay not checked"
                        );
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            (Err(e), _) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use bundle::{PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, SignRequest, SigningKey};

    struct Setup {
        tmp: tempfile::TempDir,
        key: SigningKey,
        cfg: SigningConfig,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let keys = tmp.path().join("keys");
        bundle::keygen(&keys).unwrap();
        let key = SigningKey::load(&keys.join(PRIVATE_KEY_FILE)).unwrap();
        fs::create_dir(tmp.path().join("state")).unwrap();
        fs::create_dir(tmp.path().join("rules")).unwrap();
        fs::write(tmp.path().join("rules/a.yaml"), "- rule: a\n").unwrap();
        Setup {
            cfg: SigningConfig {
                require: true,
                trusted_keys: vec![keys.join(PUBLIC_KEY_FILE)],
            },
            tmp,
            key,
        }
    }

    impl Setup {
        fn rules(&self) -> PathBuf {
            self.tmp.path().join("rules")
        }
        fn sign(&self, kind: Kind, version: u64) {
            let req = SignRequest {
                kind,
                name: "corp",
                version,
                force: true,
            };
            bundle::sign(&self.rules(), &self.key, &req).unwrap();
        }
        fn gate(&self, cfg: &SigningConfig) -> Gate {
            Gate::new(cfg, &self.tmp.path().join("state"), Record::Required).unwrap()
        }
        fn admit(&self, cfg: &SigningConfig, paths: &[PathBuf]) -> Result<(), String> {
            self.gate(cfg)
                .admit(Kind::Rules, paths)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }

    #[test]
    fn required_signing_refuses_unsigned_paths_and_checks_files() {
        let s = setup();
        let e = s.admit(&s.cfg, &[s.rules()]).unwrap_err();
        assert!(
            e.contains("not in a signed bundle") && e.contains("require = true"),
            "{e}"
        );
        s.sign(Kind::Rules, 1);
        s.admit(&s.cfg, &[s.rules()]).unwrap();
        // A file path is covered by its directory's bundle, if listed there.
        s.admit(&s.cfg, &[s.rules().join("a.yaml"), s.rules()])
            .unwrap();
        let e = s.admit(&s.cfg, &[s.rules().join("nope.yaml")]).unwrap_err();
        assert!(e.contains("nope.yaml") && e.contains("not listed"), "{e}");
        let e = s
            .admit(&s.cfg, &[s.rules().join(bundle::MANIFEST)])
            .unwrap_err();
        assert!(e.contains("not listed"), "{e}");
        // The bundle's kind must be the use's.
        let e = s
            .gate(&s.cfg)
            .admit(Kind::Ioc, &[s.rules()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a rules bundle, used here as ioc"), "{e}");
        // No paths, nothing to check.
        s.admit(&s.cfg, &[]).unwrap();
    }

    #[test]
    fn signed_bundles_are_checked_even_when_not_required() {
        let s = setup();
        let relaxed = SigningConfig {
            require: false,
            ..s.cfg.clone()
        };
        s.admit(&relaxed, &[s.rules()]).unwrap();
        s.sign(Kind::Rules, 1);
        fs::write(s.rules().join("a.yaml"), "- rule: changed\n").unwrap();
        let e = s.admit(&relaxed, &[s.rules()]).unwrap_err();
        assert!(e.contains("differs from the signed manifest"), "{e}");
        // Without any trusted key a signed bundle cannot be checked: refused, not ignored.
        s.sign(Kind::Rules, 2);
        let e = s
            .admit(&SigningConfig::default(), &[s.rules()])
            .unwrap_err();
        assert!(e.contains("trusted_keys is empty"), "{e}");
        // An untrusted signer is refused whether or not signing is required.
        let other = tempfile::tempdir().unwrap();
        bundle::keygen(other.path()).unwrap();
        let wrong = SigningConfig {
            require: false,
            trusted_keys: vec![other.path().join(PUBLIC_KEY_FILE)],
        };
        let e = s.admit(&wrong, &[s.rules()]).unwrap_err();
        assert!(e.contains("not trusted"), "{e}");
    }

    #[test]
    fn replay_of_an_older_version_is_refused() {
        let s = setup();
        s.sign(Kind::Rules, 2);
        let old_manifest = fs::read(s.rules().join(bundle::MANIFEST)).unwrap();
        let old_sig = fs::read(s.rules().join(bundle::SIGNATURE)).unwrap();
        s.admit(&s.cfg, &[s.rules()]).unwrap();
        s.sign(Kind::Rules, 3);
        s.admit(&s.cfg, &[s.rules()]).unwrap();
        // Restart: v3 again is fine.
        s.admit(&s.cfg, &[s.rules()]).unwrap();
        // The attacker puts back the validly signed v2.
        fs::write(s.rules().join(bundle::MANIFEST), old_manifest).unwrap();
        fs::write(s.rules().join(bundle::SIGNATURE), old_sig).unwrap();
        let e = s.admit(&s.cfg, &[s.rules()]).unwrap_err();
        assert!(e.contains("version 2 is older than version 3"), "{e}");
        // Best effort (sensor exec) still refuses the replay when the record is readable.
        let g = Gate::new(&s.cfg, &s.tmp.path().join("state"), Record::BestEffort).unwrap();
        assert!(g.admit(Kind::Rules, &[s.rules()]).is_err());
        // ... and goes on without a record it cannot reach.
        let g = Gate::new(&s.cfg, &s.tmp.path().join("absent"), Record::BestEffort).unwrap();
        g.admit(Kind::Rules, &[s.rules()]).unwrap();
        let g = Gate::new(&s.cfg, &s.tmp.path().join("absent"), Record::Required).unwrap();
        assert!(g.admit(Kind::Rules, &[s.rules()]).is_err());
    }

    #[test]
    fn bad_key_files_and_config_are_named() {
        let s = setup();
        let cfg = SigningConfig {
            require: true,
            trusted_keys: vec![s.tmp.path().join("missing.pub")],
        };
        let e = Gate::new(&cfg, s.tmp.path(), Record::Required).unwrap_err();
        assert!(e.to_string().contains("missing.pub"), "{e}");
        let e = SigningConfig {
            require: true,
            trusted_keys: vec![],
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.0, "signing.trusted_keys");
        SigningConfig::default().validate().unwrap();
    }
}
