//! Registry credentials from a Docker config file: the `.dockerconfigjson` key of a Secret of
//! type `kubernetes.io/dockerconfigjson`, mounted into pod-hardener, or `~/.docker/config.json`
//! for the CLI. Only `auths` is read (credential helpers run programs, which a webhook must not).
//! Hosts match as the kubelet's credential keyring matches them: the key's host (a scheme and a
//! path are ignored), `*.` wildcards one label deep, and Docker Hub's historical names.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// The largest credentials file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    // Never the password: credentials must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The file cannot be read.
    #[error("cannot read registry credentials {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Larger than 1 MiB.
    #[error("registry credentials {path} larger than 1 MiB")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// Not a Docker config file.
    #[error("invalid registry credentials {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (never a secret).
        message: String,
    },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(rename = "identitytoken")]
    identity_token: Option<String>,
}

/// Credentials by registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    by_host: BTreeMap<String, Credential>,
}

/// serde_json's position, never its message (which can quote the input).
fn not_docker_config(e: &serde_json::Error) -> String {
    format!(
        "not a Docker config file (line {}, column {})",
        e.line(),
        e.column()
    )
}

/// The registry host of a config key: `https://index.docker.io/v1/` is `index.docker.io`.
fn key_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Docker Hub answers under several names; a credential for one is for all.
fn canonical_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io"
        }
        other => other,
    }
}

impl Keyring {
    /// Reads a Docker config file.
    pub fn load(path: &Path) -> Result<Keyring, CredentialsError> {
        use std::io::Read as _;
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| CredentialsError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CredentialsError::Read {
                path: shown.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(CredentialsError::TooLarge { path: shown });
        }
        Keyring::parse(&bytes).map_err(|message| CredentialsError::Invalid {
            path: shown,
            message,
        })
    }

    /// Reads the JSON of a Docker config file (`{"auths": {host: ...}}`, the form of
    /// `~/.docker/config.json` and a `kubernetes.io/dockerconfigjson` Secret); the error never
    /// quotes the input.
    pub fn parse(json: &[u8]) -> Result<Keyring, String> {
        let config: DockerConfig =
            serde_json::from_slice(json).map_err(|e| not_docker_config(&e))?;
        Keyring::from_auths(config.auths)
    }

    /// Reads the legacy `.dockercfg` form (`{host: ...}`, without `auths`) of a
    /// `kubernetes.io/dockercfg` Secret, which the kubelet still honours.
    pub fn parse_legacy(json: &[u8]) -> Result<Keyring, String> {
        let auths: BTreeMap<String, DockerAuth> =
            serde_json::from_slice(json).map_err(|e| not_docker_config(&e))?;
        Keyring::from_auths(auths)
    }

    fn from_auths(auths: BTreeMap<String, DockerAuth>) -> Result<Keyring, String> {
        let mut by_host = BTreeMap::new();
        for (key, auth) in auths {
            let host = key_host(&key);
            let credential = match (auth.username, auth.password, auth.auth, auth.identity_token) {
                (Some(username), Some(password), _, _) => Credential { username, password },
                (_, _, Some(encoded), _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|_| format!("auths.{host}.auth is not base64"))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| format!("auths.{host}.auth is not UTF-8"))?;
                    let (username, password) = decoded
                        .split_once(':')
                        .ok_or_else(|| format!("auths.{host}.auth is not user:password"))?;
                    Credential {
                        username: username.to_owned(),
                        password: password.to_owned(),
                    }
                }
                (_, _, None, Some(token)) => Credential {
                    // Docker's convention for an identity token sent as basic credentials.
                    username: "<token>".into(),
                    password: token,
                },
                _ => continue,
            };
            by_host.insert(canonical_host(&host).to_owned(), credential);
        }
        Ok(Keyring { by_host })
    }

    /// The credential for `host` (`name[:port]`): an exact entry, else a `*.` wildcard one label
    /// deep (`*.example.com` matches `a.example.com`, not `a.b.example.com`).
    pub fn for_host(&self, host: &str) -> Option<&Credential> {
        let host = host.to_ascii_lowercase();
        let host = canonical_host(&host);
        if let Some(credential) = self.by_host.get(host) {
            return Some(credential);
        }
        let (_, parent) = host.split_once('.')?;
        self.by_host.get(&format!("*.{parent}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_and_matches_hosts_as_the_kubelet() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
            "registry.local:5000":{"username":"u","password":"p:with:colons"},
            "*.corp.example":{"auth":"Yzpk"},
            "token.example":{"identitytoken":"tok"},
            "empty.example":{}
        }}"#;
        let keyring = Keyring::parse(json).expect("parse");
        let user = |host: &str| keyring.for_host(host).map(|c| c.username.as_str());
        assert_eq!(user("docker.io"), Some("hub"));
        assert_eq!(user("registry-1.docker.io"), Some("hub"));
        assert_eq!(
            keyring
                .for_host("registry.local:5000")
                .map(|c| c.password.as_str()),
            Some("p:with:colons")
        );
        assert_eq!(user("registry.local"), None);
        assert_eq!(user("a.corp.example"), Some("c"));
        assert_eq!(user("a.b.corp.example"), None);
        assert_eq!(user("token.example"), Some("<token>"));
        assert_eq!(user("empty.example"), None);
    }

    #[test]
    fn reads_the_legacy_dockercfg_form() {
        let keyring =
            Keyring::parse_legacy(br#"{"registry.local:5000":{"auth":"dTpw","email":"e@x"}}"#)
                .expect("parse");
        let credential = keyring.for_host("registry.local:5000").expect("entry");
        assert_eq!(
            (credential.username.as_str(), credential.password.as_str()),
            ("u", "p")
        );
        // The new form read as the old one is a host named `auths` without credentials.
        let misread =
            Keyring::parse_legacy(br#"{"auths":{"r.example":{"auth":"dTpw"}}}"#).expect("parse");
        assert_eq!(misread.for_host("r.example"), None);
    }

    #[test]
    fn errors_name_the_entry_never_the_secret() {
        for (json, expected) in [
            (
                &br#"{"auths":{"r.example":{"auth":"!!!"}}}"#[..],
                "auths.r.example.auth is not base64",
            ),
            (
                br#"{"auths":{"r.example":{"auth":"bm9jb2xvbg=="}}}"#,
                "not user:password",
            ),
            (
                br#"{"auths":{"r.example":{"auth":"c2VjcmV0"}}"#,
                "not a Docker config file",
            ),
        ] {
            let err = Keyring::parse(json).expect_err("invalid");
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains("c2VjcmV0") && !err.contains("secret"),
                "{err}"
            );
        }
        let credential = Credential {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{credential:?}").contains("hunter2"));
    }
}
