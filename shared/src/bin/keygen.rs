//! Makes a development signing key: a PKCS#8 PEM private key, written only if its file does not
//! exist yet (readable by its owner only), and optionally the key's public JWK set, as
//! `JWT_PUBLIC_KEYS` wants it. `make run` and `make rehearse` use it; in AWS the keys live in
//! Secrets Manager (`scripts/keys`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use secrecy::{ExposeSecret as _, SecretString};
use shared::tokens::{SigningAlgorithm, SigningKey, generate_private_key_pem, public_key_set};

#[derive(Parser)]
#[command(about = "Writes a development signing key and, optionally, its public JWK set.")]
struct Args {
    /// The private key's file (kept if it exists).
    #[arg(long, short)]
    out: PathBuf,
    /// RS256, ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    algorithm: String,
    /// The key id in the public JWK set.
    #[arg(long, default_value = "dev-key-1")]
    kid: String,
    /// Also write the key's public JWK set here (rewritten on every run).
    #[arg(long)]
    jwks_out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = args.algorithm.as_str();
    let algorithm =
        SigningAlgorithm::parse(name).with_context(|| format!("{name:?} is not RS256, ES256 or EdDSA"))?;
    let out = args.out.as_path();
    if out.exists() {
        eprintln!("keygen: {} exists; keeping it", out.display());
    } else {
        write_private(out, generate_private_key_pem(algorithm)?.expose_secret())?;
        eprintln!("keygen: wrote a new {name} private key to {}", out.display());
    }
    if let Some(jwks_out) = &args.jwks_out {
        let pem = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
        let key = SigningKey::from_pem(&args.kid, algorithm, &SecretString::from(pem))
            .with_context(|| format!("{} (is it an {name} key?)", out.display()))?;
        std::fs::write(jwks_out, format!("{:#}\n", public_key_set(&[&key])))
            .with_context(|| format!("writing {}", jwks_out.display()))?;
        eprintln!("keygen: wrote the public key set of {} to {}", args.kid, jwks_out.display());
    }
    Ok(())
}

/// Writes a file only its owner can read; fails if it exists.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
