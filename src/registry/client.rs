//! The OCI distribution API, read-only and bounded: `GET /v2/<name>/manifests/<reference>` and
//! `GET /v2/<name>/blobs/<digest>`, anonymously or with Basic credentials, answering a Bearer
//! challenge with the token flow of the distribution spec, following a bounded number of
//! redirects (blob storage), over TLS verified against the system roots plus a CA per registry.
//!
//! Why not `oci-client`: it reads every manifest, token and error body whole into memory
//! (`res.bytes()`/`text()` with no limit, oci-client 0.18 `client.rs`), and takes no HTTP client
//! of ours to limit them with; a webhook that reads registries an attacker may control must not.
//! What is hand-written here is the request loop and the token exchange; the challenge syntax
//! (`http-auth`), references and manifest types (`oci-spec`), HTTP (hyper) and TLS (rustls) are
//! crates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::credentials::Credential;
use super::settings::{LookupSettings, RegistryHost};

/// The most redirects followed for one request (blob storage redirects once).
const MAX_REDIRECTS: usize = 5;
/// The largest token response read.
const MAX_TOKEN_BYTES: usize = 64 << 10;
/// The largest error body read (for its message).
const MAX_ERROR_BYTES: usize = 4 << 10;

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer in time.
    #[error("{what}: no answer from {endpoint} within {after:?}")]
    Timeout {
        /// What was asked for.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// The time allowed.
        after: Duration,
    },
    /// The connection failed (refused, DNS, TLS).
    #[error("{what}: cannot reach {endpoint}: {message}")]
    Connect {
        /// What was asked for.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// The transport's message.
        message: String,
    },
    /// The registry answered with an error status.
    #[error("{what}: {endpoint} answered {status}{detail}")]
    Status {
        /// What was asked for.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// The status.
        status: StatusCode,
        /// The start of the registry's error message, if it sent one (`: ...`).
        detail: String,
    },
    /// A body larger than its limit.
    #[error("{what}: {endpoint} sent more than {max} bytes")]
    TooLarge {
        /// What was asked for.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// The limit.
        max: usize,
    },
    /// More than five redirects, or one to somewhere unusable.
    #[error("{what}: {message}")]
    Redirect {
        /// What was asked for.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The token exchange failed.
    #[error("{what}: authentication with {endpoint} failed: {message}")]
    Auth {
        /// What was asked for.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// What went wrong (never a secret).
        message: String,
    },
}

impl RequestError {
    /// Whether the registry refused the credentials offered (or their absence): another
    /// credential may be accepted.
    pub fn refused_credentials(&self) -> bool {
        match self {
            RequestError::Auth { .. } => true,
            RequestError::Status { status, .. } => {
                *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN
            }
            _ => false,
        }
    }

    /// Whether the next endpoint (a mirror's origin) may do better: the endpoint was unreachable,
    /// slow, failing, or lacks the image; not when the answer is about the request itself.
    pub fn try_next_endpoint(&self) -> bool {
        match self {
            RequestError::Timeout { .. } | RequestError::Connect { .. } => true,
            RequestError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::NOT_FOUND
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// One HTTP client per TLS setting: the default (system roots) and each registry host configured
/// with its own CA or `insecureSkipVerify`.
pub struct RegistryClient {
    default: Client<Https, Empty<Bytes>>,
    by_host: BTreeMap<String, Client<Https, Empty<Bytes>>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field(
                "hosts_with_own_tls",
                &self.by_host.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A CA file is unreadable or holds no certificate.
    #[error("registries.{host}.ca: {message}")]
    Ca {
        /// The registry host.
        host: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

fn tls_config(host: Option<(&str, &RegistryHost)>) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if let Some((_, settings)) = host.filter(|(_, s)| s.insecure_skip_verify) {
        debug_assert!(settings.insecure_skip_verify);
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    // Missing or unreadable system roots leave only the configured CAs: an error per bad file
    // is not a reason to trust nothing else.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some((name, settings)) = host
        && let Some(ca) = &settings.ca
    {
        use rustls_pki_types::pem::PemObject as _;
        let pem = std::fs::read(ca).map_err(|e| ClientError::Ca {
            host: name.to_owned(),
            message: format!("cannot read {}: {e}", ca.display()),
        })?;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Ca {
                host: name.to_owned(),
                message: format!("{}: {e}", ca.display()),
            })?;
        if certs.is_empty() {
            return Err(ClientError::Ca {
                host: name.to_owned(),
                message: format!("{} holds no certificate", ca.display()),
            });
        }
        roots.add_parsable_certificates(certs);
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn http_client(
    tls: rustls::ClientConfig,
    settings: &LookupSettings,
) -> Client<Https, Empty<Bytes>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.request_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build(https)
}

impl RegistryClient {
    /// Clients for `settings`' registries.
    pub fn new(settings: &LookupSettings) -> Result<Self, ClientError> {
        let default = http_client(tls_config(None)?, settings);
        let mut by_host = BTreeMap::new();
        for (host, registry) in &settings.registries {
            if registry.ca.is_some() || registry.insecure_skip_verify {
                let tls = tls_config(Some((host, registry)))?;
                by_host.insert(host.clone(), http_client(tls, settings));
            }
        }
        Ok(RegistryClient {
            default,
            by_host,
            request_timeout: settings.request_timeout,
        })
    }

    fn client_for(&self, uri: &Uri) -> &Client<Https, Empty<Bytes>> {
        uri.authority()
            .and_then(|a| self.by_host.get(a.as_str()))
            .unwrap_or(&self.default)
    }

    /// One request, within the request timeout, without redirects or authentication.
    async fn send_once(
        &self,
        what: &'static str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, RequestError> {
        let mut req = Request::get(uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let req = req.body(Empty::new()).map_err(|e| RequestError::Connect {
            what,
            endpoint: origin(uri),
            message: e.to_string(),
        })?;
        match tokio::time::timeout(self.request_timeout, self.client_for(uri).request(req)).await {
            Err(_) => Err(RequestError::Timeout {
                what,
                endpoint: origin(uri),
                after: self.request_timeout,
            }),
            Ok(Err(e)) => Err(RequestError::Connect {
                what,
                endpoint: origin(uri),
                message: error_chain(&e),
            }),
            Ok(Ok(rsp)) => Ok(rsp),
        }
    }
}

/// `scheme://authority` of a URI, for messages (never a path or query, which can carry tokens).
fn origin(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Reads a body whole, failing past `max` bytes or at `deadline`.
pub async fn read_limited(
    what: &'static str,
    endpoint: &str,
    body: Incoming,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, RequestError> {
    let read = async {
        let mut body = body;
        let mut out = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| RequestError::Connect {
                what,
                endpoint: endpoint.to_owned(),
                message: error_chain(&e),
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max {
                    return Err(RequestError::TooLarge {
                        what,
                        endpoint: endpoint.to_owned(),
                        max,
                    });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    };
    match tokio::time::timeout_at(deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(RequestError::Timeout {
            what,
            endpoint: endpoint.to_owned(),
            after: deadline.saturating_duration_since(Instant::now()),
        }),
    }
}

/// Requests to one repository on one endpoint, carrying the authorization earned on the first
/// challenge to the requests after it.
pub struct Session<'a> {
    client: &'a RegistryClient,
    /// `scheme://host[:port]`.
    base: String,
    repository: String,
    /// `?ns=<registry>` when the endpoint is a mirror, as containerd sends it.
    namespace_query: String,
    credential: Option<Credential>,
    authorization: Option<HeaderValue>,
    deadline: Instant,
}

impl<'a> Session<'a> {
    /// A session with `repository` at `base`, ending at `deadline`.
    pub fn new(
        client: &'a RegistryClient,
        base: String,
        repository: String,
        mirror_of: Option<&str>,
        credential: Option<Credential>,
        deadline: Instant,
    ) -> Self {
        let namespace_query = mirror_of
            .map(|ns| {
                format!(
                    "?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("ns", ns)
                        .finish()
                )
            })
            .unwrap_or_default();
        Session {
            client,
            base,
            repository,
            namespace_query,
            credential,
            authorization: None,
            deadline,
        }
    }

    /// The endpoint, for records and messages.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// `GET /v2/<repository>/<kind>/<reference>` with `accept`: the response with status 200,
    /// after at most one authentication and five redirects, or why not.
    pub async fn get(
        &mut self,
        what: &'static str,
        kind: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Response<Incoming>, RequestError> {
        let first: Uri = format!(
            "{}/v2/{}/{kind}/{reference}{}",
            self.base, self.repository, self.namespace_query
        )
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| RequestError::Connect {
            what,
            endpoint: self.base.clone(),
            message: e.to_string(),
        })?;
        let mut uri = first.clone();
        let mut authenticated = false;
        let mut redirects = 0;
        loop {
            if Instant::now() >= self.deadline {
                return Err(RequestError::Timeout {
                    what,
                    endpoint: origin(&uri),
                    after: self.client.request_timeout,
                });
            }
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(accept) {
                headers.insert(ACCEPT, v);
            }
            // Credentials go to the endpoint only, never to where it redirects (blob storage
            // URLs carry their own signature).
            if uri.authority() == first.authority()
                && let Some(auth) = &self.authorization
            {
                headers.insert(AUTHORIZATION, auth.clone());
            }
            let rsp = self.client.send_once(what, &uri, &headers).await?;
            let status = rsp.status();
            if status == StatusCode::OK {
                return Ok(rsp);
            }
            if status == StatusCode::UNAUTHORIZED
                && !authenticated
                && uri.authority() == first.authority()
            {
                authenticated = true;
                let challenge = rsp
                    .headers()
                    .get(hyper::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.authorization = Some(self.authorize(what, challenge.as_deref()).await?);
                continue;
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RequestError::Redirect {
                        what,
                        message: format!(
                            "more than {MAX_REDIRECTS} redirects from {}",
                            origin(&first)
                        ),
                    });
                }
                uri = redirect_target(&uri, rsp.headers())
                    .map_err(|message| RequestError::Redirect { what, message })?;
                continue;
            }
            let endpoint = origin(&uri);
            let body = read_limited(
                what,
                &endpoint,
                rsp.into_body(),
                MAX_ERROR_BYTES,
                self.deadline,
            )
            .await
            .unwrap_or_default();
            return Err(RequestError::Status {
                what,
                endpoint,
                status,
                detail: error_detail(&body),
            });
        }
    }

    /// The `Authorization` header answering a challenge: Basic with the credential, or a Bearer
    /// token from the challenge's realm (sending the credential, if any, as Basic).
    async fn authorize(
        &self,
        what: &'static str,
        challenge: Option<&str>,
    ) -> Result<HeaderValue, RequestError> {
        let auth_error = |message: String| RequestError::Auth {
            what,
            endpoint: self.base.clone(),
            message,
        };
        let challenge = challenge.ok_or_else(|| auth_error("401 without a challenge".into()))?;
        let challenges = http_auth::parse_challenges(challenge)
            .map_err(|e| auth_error(format!("bad challenge: {e}")))?;
        let basic = self.credential.as_ref().map(|c| {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            format!("Basic {encoded}")
        });
        if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        {
            let param = |name: &str| {
                bearer
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            let realm = param("realm")
                .ok_or_else(|| auth_error("Bearer challenge without a realm".into()))?;
            let query = {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(service) = param("service") {
                    query.append_pair("service", &service);
                }
                query.append_pair("scope", &format!("repository:{}:pull", self.repository));
                query.finish()
            };
            let separator = if realm.contains('?') { '&' } else { '?' };
            let token_uri: Uri = format!("{realm}{separator}{query}")
                .parse()
                .map_err(|_| auth_error("the realm is not a URL".into()))?;
            if !matches!(token_uri.scheme_str(), Some("https" | "http")) {
                return Err(auth_error("the realm is not an http(s) URL".into()));
            }
            let mut headers = HeaderMap::new();
            if let Some(basic) = basic.as_deref().and_then(|b| HeaderValue::from_str(b).ok()) {
                headers.insert(AUTHORIZATION, basic);
            }
            let rsp = self.client.send_once(what, &token_uri, &headers).await?;
            let status = rsp.status();
            let endpoint = origin(&token_uri);
            let body = read_limited(
                what,
                &endpoint,
                rsp.into_body(),
                MAX_TOKEN_BYTES,
                self.deadline,
            )
            .await?;
            if status != StatusCode::OK {
                return Err(auth_error(format!(
                    "the token service answered {status}{}",
                    error_detail(&body)
                )));
            }
            #[derive(serde::Deserialize)]
            struct TokenResponse {
                token: Option<String>,
                access_token: Option<String>,
            }
            let token: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| auth_error("the token service sent no JSON token".into()))?;
            let token = token
                .token
                .or(token.access_token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| auth_error("the token service sent an empty token".into()))?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| auth_error("the token is not a header value".into()))?;
            value.set_sensitive(true);
            return Ok(value);
        }
        if challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
        {
            let basic = basic.ok_or_else(|| {
                auth_error(
                    "the registry asks for credentials and none are configured for it".into(),
                )
            })?;
            let mut value = HeaderValue::from_str(&basic)
                .map_err(|_| auth_error("the credential is not a header value".into()))?;
            value.set_sensitive(true);
            return Ok(value);
        }
        Err(auth_error("no Bearer or Basic challenge".into()))
    }
}

/// Where a redirect points: an absolute http(s) URL, or an absolute path on the same origin.
fn redirect_target(from: &Uri, headers: &HeaderMap) -> Result<Uri, String> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| "a redirect without a Location".to_owned())?;
    let target = if location.starts_with('/') {
        format!("{}{location}", origin(from))
    } else {
        location.to_owned()
    };
    let uri: Uri = target
        .parse()
        .map_err(|_| "a redirect to something that is not a URL".to_owned())?;
    match uri.scheme_str() {
        Some("https" | "http") if uri.authority().is_some() => Ok(uri),
        _ => Err("a redirect to something that is not an http(s) URL".to_owned()),
    }
}

/// `: <message>` from a distribution error body (`{"errors":[{"code","message"}]}`), or empty.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(errors) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let Some(first) = errors.errors.first() else {
        return String::new();
    };
    let text: String = [first.code.as_deref(), first.message.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The `Content-Type` of a response, if readable.
pub fn content_type(rsp: &Response<Incoming>) -> Option<String> {
    rsp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Accepts any certificate, for a registry configured `insecureSkipVerify` (as containerd's
/// `skip_verify`): the handshake signatures are still checked, the chain and name are not.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_to_http_urls_only() {
        let from: Uri = "https://r.example:5000/v2/a/blobs/sha256:1"
            .parse()
            .expect("uri");
        let target = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(location).expect("header"));
            redirect_target(&from, &headers).map(|u| u.to_string())
        };
        assert_eq!(
            target("/x?y=1").as_deref(),
            Ok("https://r.example:5000/x?y=1")
        );
        assert_eq!(
            target("https://storage.example/b?sig=1").as_deref(),
            Ok("https://storage.example/b?sig=1")
        );
        assert!(target("file:///etc/passwd").is_err());
        assert!(target("relative/path").is_err());
        assert!(redirect_target(&from, &HeaderMap::new()).is_err());
    }

    #[test]
    fn error_bodies_give_a_short_clean_message() {
        assert_eq!(
            error_detail(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            ": MANIFEST_UNKNOWN manifest unknown"
        );
        assert_eq!(error_detail(b"<html>"), "");
        assert_eq!(error_detail(br#"{"errors":[]}"#), "");
        let long = format!(
            r#"{{"errors":[{{"message":"{}\u0007"}}]}}"#,
            "x".repeat(500)
        );
        assert_eq!(error_detail(long.as_bytes()).len(), 202);
    }

    #[test]
    fn only_transient_or_missing_answers_try_the_next_endpoint() {
        let status = |status| RequestError::Status {
            what: "manifest",
            endpoint: String::new(),
            status,
            detail: String::new(),
        };
        assert!(status(StatusCode::NOT_FOUND).try_next_endpoint());
        assert!(status(StatusCode::BAD_GATEWAY).try_next_endpoint());
        assert!(!status(StatusCode::FORBIDDEN).try_next_endpoint());
        assert!(
            !RequestError::TooLarge {
                what: "manifest",
                endpoint: String::new(),
                max: 1
            }
            .try_next_endpoint()
        );
    }
}
