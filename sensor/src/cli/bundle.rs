//! `sensor bundle ...`: keys, signing and verification of rule, IOC and profile bundles.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::signing::{
    Kind, PublicKey,
    bundle::{self, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, SignRequest, SigningKey},
};

#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum KindArg {
    Rules,
    Ioc,
    Profiles,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Rules => Kind::Rules,
            KindArg::Ioc => Kind::Ioc,
            KindArg::Profiles => Kind::Profiles,
        }
    }
}

#[derive(Subcommand, Debug)]
enum BundleCommand {
    /// Create a signing key pair in DIR: bundle-signing.pk8 (secret, 0600) and
    /// bundle-signing.pub (for [signing] trusted_keys). Never overwrites a key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign every file in DIR: writes sensor-bundle.json and sensor-bundle.json.sig.
    Sign {
        dir: PathBuf,
        /// The secret key (bundle-signing.pk8).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Names the bundle; versions are compared per kind and name.
        #[arg(long)]
        name: String,
        /// Must be greater than the version of the bundle it replaces.
        #[arg(long)]
        version: u64,
        /// Sign even if the version is not greater than the current manifest's.
        #[arg(long)]
        force: bool,
    },
    /// Check DIR's signature and every file's hash; exits non-zero with the reason otherwise.
    Verify {
        dir: PathBuf,
        /// A trusted public key (bundle-signing.pub); repeat for several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Also require this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

pub fn main(args: BundleArgs) -> anyhow::Result<()> {
    match args.command {
        BundleCommand::Keygen { out } => {
            let id = bundle::keygen(&out)?;
            println!("key {id}");
            println!("secret: {}", out.join(PRIVATE_KEY_FILE).display());
            println!("public: {}", out.join(PUBLIC_KEY_FILE).display());
            Ok(())
        }
        BundleCommand::Sign {
            dir,
            key,
            kind,
            name,
            version,
            force,
        } => {
            let key = SigningKey::load(&key)?;
            let req = SignRequest {
                kind: kind.into(),
                name: &name,
                version,
                force,
            };
            let m = bundle::sign(&dir, &key, &req)?;
            println!(
                "{}: signed {} bundle {} version {} ({} files) with key {}",
                dir.display(),
                m.kind,
                m.name,
                m.version,
                m.files.len(),
                key.id
            );
            Ok(())
        }
        BundleCommand::Verify { dir, keys, kind } => {
            let keys = keys
                .iter()
                .map(|k| PublicKey::load(k))
                .collect::<Result<Vec<_>, _>>()?;
            let v = bundle::verify(&dir, &keys, kind.map(Kind::from))?;
            println!(
                "{}: ok: {} bundle {} version {} ({} files), signed by key {} at {}",
                dir.display(),
                v.manifest.kind,
                v.manifest.name,
                v.manifest.version,
                v.manifest.files.len(),
                v.key_id,
                crate::escape::escape_str(&v.manifest.created, 64)
            );
            for (file, sha) in &v.manifest.files {
                println!("  {sha}  {}", crate::escape::escape_str(file, 256));
            }
            Ok(())
        }
    }
}
