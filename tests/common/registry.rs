//! A real OCI registry for the tests: the CNCF distribution registry (`scripts/build-registry.sh`,
//! `POD_HARDENER_REGISTRY_BIN`), on 127.0.0.1 over TLS with a CA of the test's own, optionally
//! with basic auth (htpasswd), and test images built here (tar layers, gzip or zstd, OCI or
//! Docker media types, indexes) and pushed through the distribution API.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How long a registry may take to answer `/v2/` after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding `registry`: `POD_HARDENER_REGISTRY_BIN`, or the last stdout line of
/// `scripts/build-registry.sh`, once per test process.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = super::node::built("POD_HARDENER_REGISTRY_BIN", "scripts/build-registry.sh");
        let bin = dir.join("registry");
        assert!(
            bin.is_file(),
            "{} is missing; run scripts/build-registry.sh",
            bin.display()
        );
        bin
    })
    .clone()
}

/// The test CA and the registry's serving certificate (for 127.0.0.1), written to `dir`.
pub struct TestCerts {
    /// The CA's PEM file.
    pub ca: PathBuf,
    /// The serving certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    ca_pem: String,
}

impl TestCerts {
    /// Generates them with pod-hardener's own generator.
    pub fn generate(dir: &Path) -> Self {
        let mut request = pod_hardener::certs::CertRequest::new("registry", "test");
        request.extra_ips.push(Ipv4Addr::LOCALHOST.into());
        let certs = pod_hardener::certs::generate(&request).expect("generate certificates");
        fs::create_dir_all(dir).expect("certs dir");
        let written = pod_hardener::certs::write_files(&certs, dir).expect("write certificates");
        TestCerts {
            ca: written.ca_cert,
            cert: written.cert,
            key: written.key,
            ca_pem: certs.ca_pem,
        }
    }
}

/// A running registry; killed on drop.
pub struct Registry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`: the host part of image references.
    pub host: String,
    /// Its log.
    pub log: PathBuf,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    basic: Option<String>,
}

impl Registry {
    /// Starts a registry storing under `storage` (shared by several instances), with basic auth
    /// for `user`/`password` when given.
    pub async fn start(
        dir: &Path,
        certs: &TestCerts,
        storage: &Path,
        auth: Option<(&str, &str)>,
    ) -> Self {
        fs::create_dir_all(dir).expect("registry dir");
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            l.local_addr().expect("addr").port()
        };
        let auth_section = match auth {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let htpasswd = dir.join("htpasswd");
                fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
                json!({"htpasswd": {"realm": "pod-hardener-test", "path": htpasswd}})
            }
            None => Value::Null,
        };
        let mut config = json!({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": true}},
            "storage": {"filesystem": {"rootdirectory": storage}, "maintenance": {"uploadpurging": {"enabled": false}}},
            "http": {
                "addr": format!("127.0.0.1:{port}"),
                "tls": {"certificate": certs.cert, "key": certs.key},
            },
        });
        if !auth_section.is_null() {
            config["auth"] = auth_section;
        }
        let config_path = dir.join("config.yml");
        fs::write(
            &config_path,
            serde_json::to_string_pretty(&config).expect("json"),
        )
        .expect("write config");
        let log = dir.join("registry.log");
        let out = fs::File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        // The registry reads OTEL_* and its own REGISTRY_* variables; the test gives it none.
        let child = Command::new(binary())
            .arg("serve")
            .arg(&config_path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the registry");
        let mut roots = rustls::RootCertStore::empty();
        {
            use rustls_pki_types::pem::PemObject as _;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("add CA");
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        let basic = auth.map(|(u, p)| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let mut registry = Registry {
            child: Some(child),
            host: format!("127.0.0.1:{port}"),
            log,
            client,
            basic,
        };
        registry.wait_ready().await;
        registry
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok((status, _)) = self.request(Method::GET, "/v2/", None, None).await
                && (status == StatusCode::OK || status == StatusCode::UNAUTHORIZED)
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the registry exited ({status}): {}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not answer: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, hyper::HeaderMap), String> {
        let url = if path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("https://{}{path_or_url}", self.host)
        };
        let mut req = Request::builder().method(method).uri(url);
        if let Some(basic) = &self.basic {
            req = req.header("authorization", basic);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let rsp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let _ = rsp.into_body().collect().await;
        Ok((status, headers))
    }

    /// Pushes a blob (monolithic upload) and returns its digest.
    pub async fn push_blob(&self, repository: &str, blob: &[u8]) -> String {
        let digest = pod_hardener::registry::manifest::sha256_digest(blob);
        let (status, headers) = self
            .request(
                Method::POST,
                &format!("/v2/{repository}/blobs/uploads/"),
                None,
                None,
            )
            .await
            .expect("start upload");
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "start upload to {repository}: {}",
            self.log_tail()
        );
        let location = headers["location"].to_str().expect("location").to_owned();
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with('/') {
            format!("https://{}{location}{separator}digest={digest}", self.host)
        } else {
            format!("{location}{separator}digest={digest}")
        };
        let (status, _) = self
            .request(
                Method::PUT,
                &url,
                Some("application/octet-stream"),
                Some(blob.to_vec()),
            )
            .await
            .expect("upload");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "upload {digest}: {}",
            self.log_tail()
        );
        digest
    }

    /// Pushes a manifest under `reference` (a tag or a digest) and returns its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> String {
        let (status, _) = self
            .request(
                Method::PUT,
                &format!("/v2/{repository}/manifests/{reference}"),
                Some(media_type),
                Some(manifest.to_vec()),
            )
            .await
            .expect("push manifest");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "push {repository}:{reference}: {}",
            self.log_tail()
        );
        pod_hardener::registry::manifest::sha256_digest(manifest)
    }

    /// Pushes `image` as `repository:tag` and returns the digest of what the tag names.
    pub async fn push(&self, repository: &str, tag: &str, image: &TestImage) -> String {
        match image {
            TestImage::Single(platform_image) => {
                let (media_type, manifest) =
                    self.push_platform_image(repository, platform_image).await;
                self.push_manifest(repository, tag, media_type, &manifest)
                    .await
            }
            TestImage::Index(images) => {
                let mut entries = Vec::new();
                for (platform, image) in images {
                    let (media_type, manifest) = self.push_platform_image(repository, image).await;
                    let digest = pod_hardener::registry::manifest::sha256_digest(&manifest);
                    self.push_manifest(repository, &digest, media_type, &manifest)
                        .await;
                    let (os, arch) = platform.split_once('/').expect("os/arch");
                    entries.push(json!({
                        "mediaType": media_type,
                        "digest": digest,
                        "size": manifest.len(),
                        "platform": {"os": os, "architecture": arch},
                    }));
                }
                let index = json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": entries,
                });
                let bytes = serde_json::to_vec(&index).expect("index");
                self.push_manifest(
                    repository,
                    tag,
                    "application/vnd.oci.image.index.v1+json",
                    &bytes,
                )
                .await
            }
        }
    }

    async fn push_platform_image(
        &self,
        repository: &str,
        image: &PlatformImage,
    ) -> (&'static str, Vec<u8>) {
        let docker = image.docker_media_types;
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in &image.layers {
            let tar = layer.tar();
            diff_ids.push(pod_hardener::registry::manifest::sha256_digest(&tar));
            let (blob, media_type) = match (layer.compression, docker) {
                (Compression::Gzip, false) => {
                    (gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip")
                }
                (Compression::Gzip, true) => (
                    gzip(&tar),
                    "application/vnd.docker.image.rootfs.diff.tar.gzip",
                ),
                (Compression::Zstd, _) => (
                    ruzstd::encoding::compress_to_vec(
                        tar.as_slice(),
                        ruzstd::encoding::CompressionLevel::Fastest,
                    ),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
                (Compression::None, false) => (tar, "application/vnd.oci.image.layer.v1.tar"),
                (Compression::None, true) => (tar, "application/vnd.docker.image.rootfs.diff.tar"),
            };
            let digest = self.push_blob(repository, &blob).await;
            layers.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
        }
        let mut container_config = json!({"Entrypoint": image.entrypoint});
        if let Some(user) = &image.user {
            container_config["User"] = json!(user);
        }
        let config = json!({
            "architecture": image.architecture,
            "os": "linux",
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config_bytes = serde_json::to_vec(&config).expect("config");
        let config_digest = self.push_blob(repository, &config_bytes).await;
        let (manifest_type, config_type) = if docker {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
            )
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config_bytes.len()},
            "layers": layers,
        });
        (
            manifest_type,
            serde_json::to_vec(&manifest).expect("manifest"),
        )
    }

    /// Pushes every tagged image of an OCI archive (an OCI image layout in a tar, as
    /// `scripts/build-node-images.sh` packs them; tags from `org.opencontainers.image.ref.name`)
    /// to `repository`, returning the tags pushed.
    pub async fn push_oci_archive(&self, archive: &Path, repository: &str) -> Vec<String> {
        let mut blobs = std::collections::BTreeMap::new();
        let mut index = None;
        let file = fs::File::open(archive).expect("open the OCI archive");
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries().expect("read the OCI archive") {
            let mut entry = entry.expect("an archive entry");
            let path = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).expect("read an entry");
            if path == "index.json" {
                index = Some(content);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                blobs.insert(format!("sha256:{hex}"), content);
            }
        }
        let index: Value =
            serde_json::from_slice(&index.expect("index.json in the archive")).expect("index.json");
        let mut tags = Vec::new();
        for descriptor in index["manifests"].as_array().expect("manifests") {
            let Some(tag) = descriptor["annotations"]["org.opencontainers.image.ref.name"].as_str()
            else {
                continue;
            };
            let digest = descriptor["digest"].as_str().expect("digest");
            let manifest_bytes = &blobs[digest];
            let manifest: Value = serde_json::from_slice(manifest_bytes).expect("manifest");
            let referenced = std::iter::once(&manifest["config"])
                .chain(manifest["layers"].as_array().into_iter().flatten());
            for blob in referenced {
                let blob_digest = blob["digest"].as_str().expect("blob digest");
                self.push_blob(repository, &blobs[blob_digest]).await;
            }
            let media_type = descriptor["mediaType"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.manifest.v1+json");
            self.push_manifest(repository, tag, media_type, manifest_bytes)
                .await;
            tags.push(tag.to_owned());
        }
        tags
    }

    /// Kills the registry (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// One layer: files (path, content, mode) in a tar.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `(path, content, mode)`.
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// How it is compressed.
    pub compression: Compression,
}

impl Layer {
    /// A gzip layer of `files`.
    pub fn gzip(files: &[(&str, &[u8])]) -> Self {
        Layer {
            files: files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), c.to_vec(), 0o644))
                .collect(),
            compression: Compression::Gzip,
        }
    }

    /// The same files, compressed otherwise.
    pub fn compressed(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The layer as a tar.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content, mode) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            builder
                .append_data(&mut header, path, content.as_slice())
                .expect("tar entry");
        }
        builder.into_inner().expect("tar")
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// One platform's image.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The config's `User`, or none at all.
    pub user: Option<String>,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    /// `amd64`, `arm64`.
    pub architecture: String,
    /// Docker's media types instead of OCI's.
    pub docker_media_types: bool,
    /// The config's entrypoint.
    pub entrypoint: Vec<String>,
}

impl PlatformImage {
    /// An amd64 OCI image with `user` and `layers`.
    pub fn new(user: Option<&str>, layers: Vec<Layer>) -> Self {
        PlatformImage {
            user: user.map(str::to_owned),
            layers,
            architecture: "amd64".into(),
            docker_media_types: false,
            entrypoint: vec!["/bin/true".into()],
        }
    }
}

/// A test image: one manifest, or an index of `(os/arch, image)`.
#[derive(Debug, Clone)]
pub enum TestImage {
    /// One manifest.
    Single(PlatformImage),
    /// An index.
    Index(Vec<(String, PlatformImage)>),
}
