//! A Pod's own `imagePullSecrets` as lookup credentials (`images.podPullSecrets`, off by
//! default). The kubelet pulls with the Secrets a Pod names (the ServiceAccount admission plugin
//! has already copied its ServiceAccount's into the Pod when a webhook sees it), so a private
//! image whose registry pod-hardener has no credentials for is still readable with them.
//!
//! The trade-off, and why it is opt-in: it needs `get` on Secrets, and pod-hardener then holds a
//! credential that can read every pull secret of the namespaces it serves. The Secrets are read
//! from the Pod's own namespace only, when a lookup needs them (a cache miss), never listed or
//! watched, and kept only for that lookup; the answers they open are cached apart per namespace
//! and Secret names, so a Pod without the Secrets never gets an answer only they could give.

use k8s_openapi::api::core::v1::Secret;
use tokio::time::Instant;

use super::credentials::Keyring;

/// The Secret type whose `.dockerconfigjson` the kubelet reads (`{"auths": ...}`).
const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The legacy type whose `.dockercfg` the kubelet reads (`{host: ...}`).
const DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// The pull Secrets a Pod names, in its namespace: part of the cache key of the lookups they
/// take part in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodPullSecrets {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Secret names, in the Pod's order (the kubelet tries their credentials in it).
    pub names: Vec<String>,
}

impl PodPullSecrets {
    /// The Secrets `names` (as [`super::PodImages::pull_secrets`] reads them) in `namespace`;
    /// `None` when there are none.
    pub fn new(namespace: &str, names: &[String]) -> Option<Self> {
        (!names.is_empty()).then(|| PodPullSecrets {
            namespace: namespace.to_owned(),
            names: names.to_vec(),
        })
    }
}

/// The credentials a Pod's Secrets gave, and what went wrong reading the others.
#[derive(Debug, Clone, Default)]
pub struct PodKeyrings {
    /// Each readable Secret's credentials, in the Pod's order.
    pub keyrings: Vec<(String, Keyring)>,
    /// `<name>: <why>` for each Secret that gave none (never a secret's content).
    pub problems: Vec<String>,
}

/// Reads pull Secrets through the API server.
#[derive(Clone)]
pub struct PullSecretReader {
    client: kube::Client,
}

impl std::fmt::Debug for PullSecretReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecretReader").finish_non_exhaustive()
    }
}

impl PullSecretReader {
    /// A reader using `client` (pod-hardener's own identity: it needs `get` on `secrets`).
    pub fn new(client: kube::Client) -> Self {
        PullSecretReader { client }
    }

    /// The credentials of each of `secrets`, each read by `deadline`. A Secret that is missing,
    /// forbidden, late or of another type gives none, as the kubelet then pulls without it.
    pub async fn read(&self, secrets: &PodPullSecrets, deadline: Instant) -> PodKeyrings {
        let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), &secrets.namespace);
        let mut read = PodKeyrings::default();
        for name in &secrets.names {
            let answer = tokio::time::timeout_at(deadline, api.get_opt(name)).await;
            let keyring = match answer {
                Err(_) => Err("not read in time".to_owned()),
                Ok(Err(kube::Error::Api(status))) => {
                    Err(format!("{} ({})", status.reason, status.code))
                }
                Ok(Err(e)) => Err(format!("not read: {e}")),
                Ok(Ok(None)) => Err("not found".to_owned()),
                Ok(Ok(Some(secret))) => keyring_of(&secret),
            };
            match keyring {
                Ok(keyring) => read.keyrings.push((name.clone(), keyring)),
                Err(why) => {
                    tracing::debug!(namespace = %secrets.namespace, secret = %name, reason = %why, "imagePullSecret not used");
                    read.problems.push(format!("{name}: {why}"));
                }
            }
        }
        read
    }
}

/// A Secret's registry credentials, read as the kubelet reads them (`MakeDockerKeyring`): the
/// `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret, the `.dockercfg` of a
/// `kubernetes.io/dockercfg` one; any other Secret gives none.
pub fn keyring_of(secret: &Secret) -> Result<Keyring, String> {
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
    };
    let ty = secret.type_.as_deref().unwrap_or("Opaque");
    match ty {
        DOCKER_CONFIG_JSON => match data(".dockerconfigjson") {
            Some(json) => Keyring::parse(json),
            None => Err("no .dockerconfigjson".to_owned()),
        },
        DOCKERCFG => match data(".dockercfg") {
            Some(json) => Keyring::parse_legacy(json),
            None => Err("no .dockercfg".to_owned()),
        },
        other => Err(format!(
            "type {other}, not {DOCKER_CONFIG_JSON} or {DOCKERCFG}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(ty: &str, key: &str, value: &str) -> Secret {
        Secret {
            type_: Some(ty.to_owned()),
            data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn reads_the_two_pull_secret_types_and_nothing_else() {
        let user = |keyring: Result<Keyring, String>| {
            keyring
                .expect("keyring")
                .for_host("r.local:5000")
                .map(|c| c.username.clone())
        };
        assert_eq!(
            user(keyring_of(&secret(
                DOCKER_CONFIG_JSON,
                ".dockerconfigjson",
                r#"{"auths":{"r.local:5000":{"username":"a","password":"b"}}}"#
            ))),
            Some("a".to_owned())
        );
        assert_eq!(
            user(keyring_of(&secret(
                DOCKERCFG,
                ".dockercfg",
                r#"{"r.local:5000":{"auth":"dTpw"}}"#
            ))),
            Some("u".to_owned())
        );
        for (ty, key, expected) in [
            (DOCKER_CONFIG_JSON, ".dockercfg", "no .dockerconfigjson"),
            (DOCKERCFG, ".dockerconfigjson", "no .dockercfg"),
            ("Opaque", ".dockerconfigjson", "type Opaque"),
        ] {
            let err = keyring_of(&secret(ty, key, "{}")).expect_err(ty);
            assert!(err.contains(expected), "{err}");
        }
        let err = keyring_of(&secret(DOCKER_CONFIG_JSON, ".dockerconfigjson", "hunter2"))
            .expect_err("not JSON");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
