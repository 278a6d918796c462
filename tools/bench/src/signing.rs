//! The access-token signer measured against the one it replaced (issue 12): `scripts/bench`
//! builds the refresh function a second time with `shared/reparsing-signer` (every signature
//! through `jsonwebtoken::encode`, which parses the private key each time) and keeps it as
//! `refresh-reparsing` beside the release binaries.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The function binaries the emulator runs, by the names the template's `CodeUri`s give.
const BINARIES: [&str; 8] = ["signup", "login", "refresh", "me", "logout", "health", "jwks", "migrate"];

/// A directory of links to today's binaries, but for `refresh`, which is the reparsing build;
/// `None` when that build is not there (`--quick`, or auth-bench run by hand).
pub fn reparsing_binaries(binaries: &Path) -> anyhow::Result<Option<PathBuf>> {
    let reparsing = binaries.join("refresh-reparsing");
    if !reparsing.is_file() {
        return Ok(None);
    }
    let dir = binaries.join("reparsing-signer");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in BINARIES {
        let link = dir.join(name);
        let target = if name == "refresh" { reparsing.clone() } else { binaries.join(name) };
        std::fs::remove_file(&link).ok();
        std::os::unix::fs::symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(Some(dir))
}
