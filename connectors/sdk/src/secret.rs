//! A secret value (app secret, access token) that never prints.

use std::fmt;

/// Holds a secret; `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for signing or sending. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_prints() {
        let s = super::Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}

/// Where a secret comes from: an environment variable or a file (never the
/// config text itself).
/// A value written in its place (a secret pasted inline by mistake) is
/// refused with an error that does not repeat it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Read from this environment variable: `{ env = "TAOBAO_APP_SECRET" }`.
    Env(String),
    /// Read from this file, trailing newline trimmed: `{ file = "/run/secrets/x" }`.
    File(std::path::PathBuf),
    /// Given by code (the demo and tests); cannot be written in a config file.
    Inline(Secret),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Inline(_) => f.write_str("inline:<redacted>"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretRefVisitor)
    }
}

/// Reads `{ env = "VAR" }` or `{ file = "/path" }`; anything else (a secret
/// written inline by mistake) is refused without echoing the value.
struct SecretRefVisitor;

const SECRET_HELP: &str = "a secret is never written in the config: write { env = \"VAR\" } or { file = \"/path/to/secret\" }";

impl<'de> serde::de::Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ env = \"VAR\" } or { file = \"/path\" }")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        use serde::de::Error;
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::custom(SECRET_HELP));
        };
        let out = match key.as_str() {
            "env" => SecretRef::Env(map.next_value()?),
            "file" => SecretRef::File(map.next_value()?),
            other => {
                return Err(A::Error::custom(format!(
                    "unknown secret source `{other}`: {SECRET_HELP}"
                )))
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom(format!(
                "one source per secret: {SECRET_HELP}"
            )));
        }
        Ok(out)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Err(E::custom(SECRET_HELP))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
        Err(E::custom(SECRET_HELP))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
        Err(E::custom(SECRET_HELP))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretRef, E> {
        Err(E::custom(SECRET_HELP))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretRef, E> {
        Err(E::custom(SECRET_HELP))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        Err(<A::Error as serde::de::Error>::custom(SECRET_HELP))
    }
}

/// Why a secret could not be read. Names where it was looked for, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set or empty.
    #[error("environment variable {0} is not set or empty")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SecretRef {
    /// A secret given by code.
    pub fn inline(value: impl Into<String>) -> Self {
        SecretRef::Inline(Secret::new(value))
    }

    /// Read the secret.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim().to_string()))
                .ok_or_else(|| SecretError::MissingEnv(name.clone())),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret::new(v.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                }),
            SecretRef::Inline(s) => Ok(s.clone()),
        }
    }
}

#[cfg(test)]
mod ref_tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_and_names_the_source_on_error() {
        std::env::set_var("QUANYU_TEST_SECRET_X", "s3cret");
        assert_eq!(
            SecretRef::Env("QUANYU_TEST_SECRET_X".into())
                .resolve()
                .unwrap()
                .expose(),
            "s3cret"
        );
        let err = SecretRef::Env("QUANYU_TEST_NOT_SET".into())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("QUANYU_TEST_NOT_SET"));
        let dir = std::env::temp_dir().join(format!("quanyu-secret-{}", std::process::id()));
        std::fs::write(&dir, "filesecret\n").unwrap();
        assert_eq!(
            SecretRef::File(dir.clone()).resolve().unwrap().expose(),
            "filesecret"
        );
        std::fs::remove_file(&dir).unwrap();
        assert!(SecretRef::File(dir).resolve().is_err());
    }
}
