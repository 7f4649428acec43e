//! The lake key: created by `quanyu init` outside the lake with mode 0600, or
//! supplied by `QUANYU_LAKE_KEY`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use quanyu_schemas::LakeKey;
use rand::RngCore;

/// The environment variable that supplies the key (64 hex characters).
pub const KEY_ENV: &str = "QUANYU_LAKE_KEY";

/// Create a new key file at `path` (mode 0600). Refuses to overwrite one:
/// a new key would orphan every hash already in the lake.
pub fn init_key(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = LakeKey::from_bytes(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    writeln!(f, "{}", key.to_hex())?;
    Ok(true)
}

/// Load the key: `QUANYU_LAKE_KEY` if set, else the key file.
pub fn load_key(path: &Path) -> Result<LakeKey> {
    if let Ok(v) = std::env::var(KEY_ENV) {
        return LakeKey::from_hex(&v).with_context(|| format!("{KEY_ENV} is not a valid lake key"));
    }
    if !path.exists() {
        bail!(
            "no lake key: run `quanyu init` to create {} or set {KEY_ENV}",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "lake key file is readable by others; chmod 600 it");
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read lake key {}", path.display()))?;
    LakeKey::from_hex(&text)
        .with_context(|| format!("lake key file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/lake.key");
        assert!(init_key(&path).unwrap());
        assert!(!init_key(&path).unwrap(), "never overwrite a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let k1 = load_key(&path).unwrap();
        assert_eq!(k1.to_hex().len(), 64);
        assert!(load_key(&dir.path().join("missing"))
            .unwrap_err()
            .to_string()
            .contains("quanyu init"));
    }
}
