//! Image lookups against a real OCI registry (issue 14): the CNCF distribution registry on
//! 127.0.0.1 over TLS (and a second instance with basic auth over the same storage), test images
//! built here and pushed, then looked up as the webhook looks them up; registry faults from a
//! fake registry of the test's own; and the decision through the webhook's routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use common::registry::{Compression, Layer, PlatformImage, Registry, TestCerts, TestImage};
use pod_hardener::admission::AdmissionSettings;
use pod_hardener::config::Limits;
use pod_hardener::harden::images::{ImageLookup, UserVerdict, verdict};
use pod_hardener::namespaces::NamespacePolicies;
use pod_hardener::policy::DefaultPolicy;
use pod_hardener::registry::settings::{ImageLookupConfig, RegistryHost};
use pod_hardener::registry::{ImageLookups, LookupSettings, Platform};
use pod_hardener::server::routes::{self, AppState, RequestLimits, RouteSet};

const PASSWD_APP: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n";

fn passwd(name: &str, uid: u32) -> Vec<u8> {
    format!("root:x:0:0:root:/root:/bin/sh\n{name}:x:{uid}:{uid}::/home/{name}:/bin/sh\n")
        .into_bytes()
}

fn amd64() -> Platform {
    "linux/amd64".parse().unwrap()
}

/// Settings for lookups against `hosts`, each trusting `ca` (or over plain HTTP).
fn settings(
    hosts: &[(&str, RegistryHost)],
    edit: impl FnOnce(&mut ImageLookupConfig),
) -> LookupSettings {
    let mut config = ImageLookupConfig {
        enabled: true,
        registries: hosts
            .iter()
            .map(|(h, r)| ((*h).to_owned(), r.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..ImageLookupConfig::default()
    };
    edit(&mut config);
    config.validate().unwrap().unwrap()
}

fn trusting(ca: &std::path::Path) -> RegistryHost {
    RegistryHost {
        ca: Some(ca.to_owned()),
        ..RegistryHost::default()
    }
}

/// What the kubelet must make of an image.
type Expected = fn(&UserVerdict) -> bool;

/// The test images: name, image, and what the kubelet will make of it.
fn images() -> Vec<(&'static str, TestImage, Expected)> {
    let single = |user: Option<&str>, layers: Vec<Layer>| {
        TestImage::Single(PlatformImage::new(user, layers))
    };
    let base = || Layer::gzip(&[("bin/true", b"#!/bin/sh\n"), ("etc/passwd", PASSWD_APP)]);
    let mut docker = PlatformImage::new(Some("app"), vec![base()]);
    docker.docker_media_types = true;
    let mut arm = PlatformImage::new(
        Some("app"),
        vec![Layer::gzip(&[("etc/passwd", &passwd("app", 4004))])],
    );
    arm.architecture = "arm64".into();
    vec![
        (
            "no-user",
            single(None, vec![base()]),
            |v| matches!(v, UserVerdict::Root(d) if d.contains("sets no user")),
        ),
        ("uid-zero", single(Some("0"), vec![base()]), |v| {
            matches!(v, UserVerdict::Root(_))
        }),
        ("numeric", single(Some("1000"), vec![base()]), |v| {
            *v == UserVerdict::Verifiable
        }),
        ("uid-gid", single(Some("1000:1000"), vec![base()]), |v| {
            *v == UserVerdict::Verifiable
        }),
        ("named", single(Some("app"), vec![base()]), |v| {
            matches!(v, UserVerdict::NamedUid { uid: 1001, .. })
        }),
        ("named-group", single(Some("app:app"), vec![base()]), |v| {
            matches!(v, UserVerdict::NamedUid { uid: 1001, .. })
        }),
        (
            "named-absent",
            single(Some("ghost"), vec![base()]),
            |v| matches!(v, UserVerdict::Unverifiable(d) if d.contains("ghost")),
        ),
        (
            "named-root",
            single(Some("root"), vec![base()]),
            |v| matches!(v, UserVerdict::Root(d) if d.contains("UID 0")),
        ),
        (
            "passwd-replaced",
            single(
                Some("app"),
                vec![base(), Layer::gzip(&[("etc/passwd", &passwd("app", 2002))])],
            ),
            |v| matches!(v, UserVerdict::NamedUid { uid: 2002, .. }),
        ),
        (
            "passwd-whited-out",
            single(
                Some("app"),
                vec![base(), Layer::gzip(&[("etc/.wh.passwd", b"")])],
            ),
            |v| matches!(v, UserVerdict::Unverifiable(_)),
        ),
        (
            "passwd-opaque-etc",
            single(
                Some("app"),
                vec![
                    base(),
                    Layer::gzip(&[("etc/.wh..wh..opq", b""), ("etc/hostname", b"x")]),
                ],
            ),
            |v| matches!(v, UserVerdict::Unverifiable(_)),
        ),
        (
            "passwd-lower",
            single(
                Some("app"),
                vec![
                    base(),
                    Layer::gzip(&[("srv/app", b"app")]).compressed(Compression::None),
                ],
            ),
            |v| matches!(v, UserVerdict::NamedUid { uid: 1001, .. }),
        ),
        (
            "zstd",
            single(
                Some("app"),
                vec![
                    Layer::gzip(&[("etc/passwd", &passwd("app", 3003))])
                        .compressed(Compression::Zstd),
                ],
            ),
            |v| matches!(v, UserVerdict::NamedUid { uid: 3003, .. }),
        ),
        ("docker-types", TestImage::Single(docker), |v| {
            matches!(v, UserVerdict::NamedUid { uid: 1001, .. })
        }),
        (
            "multi-platform",
            TestImage::Index(vec![
                ("linux/arm64".into(), arm),
                (
                    "linux/amd64".into(),
                    PlatformImage::new(Some("1000"), vec![base()]),
                ),
            ]),
            |v| *v == UserVerdict::Verifiable,
        ),
    ]
}

struct World {
    _dir: tempfile::TempDir,
    certs: TestCerts,
    registry: Registry,
    auth_registry: Registry,
    /// Repository name to the digest its tag `1` names.
    digests: BTreeMap<&'static str, String>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let storage = dir.path().join("storage");
    let registry = Registry::start(&dir.path().join("open"), &certs, &storage, None).await;
    let auth_registry = Registry::start(
        &dir.path().join("auth"),
        &certs,
        &storage,
        Some(("puller", "s3cret")),
    )
    .await;
    let mut digests = BTreeMap::new();
    for (name, image, _) in images() {
        digests.insert(name, registry.push(name, "1", &image).await);
    }
    World {
        _dir: dir,
        certs,
        registry,
        auth_registry,
        digests,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_read_every_kind_of_image_as_the_kubelet_will() {
    let world = world().await;
    let host = world.registry.host.clone();
    let lookups =
        ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |_| {})).unwrap();
    let refs: Vec<String> = images()
        .iter()
        .map(|(name, _, _)| format!("{host}/{name}:1"))
        .collect();
    let started = Instant::now();
    let catalog = lookups.catalog(&refs, &amd64(), None).await;
    let cold = started.elapsed();
    for (name, _, expected) in images() {
        let reference = format!("{host}/{name}:1");
        let lookup = catalog.get(&reference).unwrap();
        let ImageLookup::Found(facts) = lookup else {
            panic!(
                "{name}: {lookup:?}\nregistry log:\n{}",
                world.registry.log_tail()
            )
        };
        assert_eq!(
            &facts.digest, &world.digests[name],
            "{name}: the digest the tag names"
        );
        let v = verdict(&reference, Some(lookup));
        assert!(expected(&v), "{name}: {v:?} ({facts:?})");
    }
    // The arm64 half of the index is another image.
    let arm: Platform = "linux/arm64".parse().unwrap();
    let multi = format!("{host}/multi-platform:1");
    let arm_catalog = lookups
        .catalog(std::slice::from_ref(&multi), &arm, None)
        .await;
    assert!(matches!(
        verdict(&multi, arm_catalog.get(&multi)),
        UserVerdict::NamedUid { uid: 4004, .. }
    ));
    // A digest reference reads the same image, verified against its digest.
    let pinned = format!("{host}/named@{}", world.digests["named"]);
    let pinned_catalog = lookups
        .catalog(std::slice::from_ref(&pinned), &amd64(), None)
        .await;
    assert!(matches!(
        verdict(&pinned, pinned_catalog.get(&pinned)),
        UserVerdict::NamedUid { uid: 1001, .. }
    ));
    // A second review is answered from the cache: no lookup starts.
    let found_before = lookups.counters().found.load(Ordering::Relaxed);
    let started = Instant::now();
    let again = lookups.catalog(&refs, &amd64(), None).await;
    let warm = started.elapsed();
    assert_eq!(again, catalog);
    assert_eq!(
        lookups.counters().found.load(Ordering::Relaxed),
        found_before
    );
    assert!(lookups.counters().cache_hits.load(Ordering::Relaxed) >= refs.len() as u64);
    eprintln!(
        "lookups: {} images cold in {cold:.1?} (in parallel), warm in {warm:.1?}; {} cached",
        refs.len(),
        lookups.cached()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_open_a_registry_that_asks_for_them() {
    let world = world().await;
    let host = world.auth_registry.host.clone();
    let image = format!("{host}/named:1");
    let anonymous =
        ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |_| {})).unwrap();
    let catalog = anonymous
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    let Some(ImageLookup::Unavailable(reason)) = catalog.get(&image) else {
        panic!("{catalog:?}")
    };
    assert!(reason.contains("none are configured"), "{reason}");

    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join(".dockerconfigjson");
    let write = |password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("puller:{password}"));
        std::fs::write(
            &credentials,
            json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
    };
    write("wrong");
    let with_credentials =
        ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |c| {
            c.credentials_file = Some(credentials.clone());
            c.failure_ttl = pod_hardener::config::HumanDuration(Duration::from_millis(1));
        }))
        .unwrap();
    let catalog = with_credentials
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    let Some(ImageLookup::Unavailable(reason)) = catalog.get(&image) else {
        panic!("{catalog:?}")
    };
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains("wrong"), "no secret in a reason: {reason}");
    // The file is read at each lookup: the rotated Secret applies without a restart.
    write("s3cret");
    // The expired failure answers at once while the refresh, with the new file, runs.
    let mut polls = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let catalog = with_credentials
            .catalog(std::slice::from_ref(&image), &amd64(), None)
            .await;
        if matches!(
            verdict(&image, catalog.get(&image)),
            UserVerdict::NamedUid { uid: 1001, .. }
        ) {
            break;
        }
        polls += 1;
        assert!(
            polls < 50,
            "the rotated credentials never applied: {catalog:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_whose_certificate_is_not_trusted_is_refused() {
    let world = world().await;
    let host = world.registry.host.clone();
    let image = format!("{host}/named:1");
    let untrusting = ImageLookups::new(settings(&[], |_| {})).unwrap();
    let catalog = untrusting
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    let Some(ImageLookup::Unavailable(reason)) = catalog.get(&image) else {
        panic!("{catalog:?}")
    };
    assert!(
        reason.contains("cannot reach") && reason.to_lowercase().contains("certificate"),
        "{reason}"
    );
    let skipping = ImageLookups::new(settings(
        &[(
            &host,
            RegistryHost {
                insecure_skip_verify: true,
                ..RegistryHost::default()
            },
        )],
        |_| {},
    ))
    .unwrap();
    let catalog = skipping
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    assert!(
        matches!(catalog.get(&image), Some(ImageLookup::Found(_))),
        "{catalog:?}"
    );
}

/// A fake registry over plain HTTP on 127.0.0.1 that misbehaves by path.
async fn fake_registry(bomb: Arc<FakeImage>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let bomb = bomb.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let bomb = bomb.clone();
                        async move {
                            Ok::<_, Infallible>(fake_answer(req.uri().path(), addr, &bomb).await)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(
    status: StatusCode,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Response<FakeBody> {
    let mut rsp = Response::builder().status(status);
    for (k, v) in headers {
        rsp = rsp.header(*k, v);
    }
    rsp.body(Full::new(body.into()).boxed()).unwrap()
}

/// A manifest whose config names user `app` and whose one layer is `layer`.
struct FakeImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

impl FakeImage {
    fn new(layer: Vec<u8>) -> Self {
        let digest = pod_hardener::registry::manifest::sha256_digest;
        let config = json!({"architecture": "amd64", "os": "linux", "config": {"User": "app"}})
            .to_string()
            .into_bytes();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        FakeImage {
            config_digest: digest(&config),
            layer_digest: digest(&layer),
            manifest,
            config,
            layer,
        }
    }
}

async fn fake_answer(path: &str, addr: SocketAddr, image: &FakeImage) -> Response<FakeBody> {
    let oci = (
        "content-type",
        "application/vnd.oci.image.manifest.v1+json".to_owned(),
    );
    let repo = path
        .trim_start_matches("/v2/")
        .split('/')
        .next()
        .unwrap_or_default();
    match (repo, path) {
        (_, "/v2/") => full(StatusCode::OK, &[], "{}"),
        ("slow", _) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            full(StatusCode::OK, &[], "")
        }
        ("missing", _) => full(
            StatusCode::NOT_FOUND,
            &[],
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
        ("failing", _) => full(StatusCode::INTERNAL_SERVER_ERROR, &[], "boom"),
        ("basic", _) => full(
            StatusCode::UNAUTHORIZED,
            &[("www-authenticate", r#"Basic realm="fake""#.into())],
            "",
        ),
        ("bearer", _) if path.starts_with("/v2/bearer/") => full(
            StatusCode::UNAUTHORIZED,
            &[(
                "www-authenticate",
                format!(r#"Bearer realm="http://{addr}/token",service="fake""#),
            )],
            "",
        ),
        ("huge", _) => {
            // 64 MiB of JSON whitespace, in 64 KiB chunks, for a 4 MiB limit.
            let chunks = futures_util::stream::iter(
                (0..1024)
                    .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 64 << 10])))),
            );
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(StreamBody::new(chunks).boxed())
                .unwrap()
        }
        ("malformed", _) => full(
            StatusCode::OK,
            &[oci],
            "{\"schemaVersion\": 2, \"config\": ",
        ),
        ("loop", _) => full(
            StatusCode::TEMPORARY_REDIRECT,
            &[("location", path.to_owned())],
            "",
        ),
        ("mismatch", _) => full(StatusCode::OK, &[oci], image.manifest.clone()),
        ("bomb", p) if p.ends_with("/manifests/1") => {
            full(StatusCode::OK, &[oci], image.manifest.clone())
        }
        ("bomb", p) if p.ends_with(&image.config_digest) => {
            full(StatusCode::OK, &[], image.config.clone())
        }
        ("bomb", p) if p.ends_with(&image.layer_digest) => {
            full(StatusCode::OK, &[], image.layer.clone())
        }
        _ if path == "/token" => full(
            StatusCode::FORBIDDEN,
            &[],
            r#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
        ),
        _ => full(StatusCode::NOT_FOUND, &[], ""),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_faults_answer_within_the_budget_and_are_recorded() {
    // A gzip of 64 MiB of zeros (about 64 KiB), for an 8 MiB decompression limit.
    let bomb = {
        use std::io::Write as _;
        let mut tar_header = tar::Header::new_gnu();
        tar_header.set_size(64 << 20);
        tar_header.set_entry_type(tar::EntryType::Regular);
        tar_header.set_path("big").unwrap();
        tar_header.set_cksum();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(tar_header.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20);
    let image = Arc::new(FakeImage::new(bomb));
    let fake = fake_registry(image.clone()).await;
    let down = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap()
    };
    let plain = RegistryHost {
        plain_http: true,
        ..RegistryHost::default()
    };
    let lookups = ImageLookups::new(settings(
        &[
            (&fake.to_string(), plain.clone()),
            (&down.to_string(), plain),
        ],
        |c| {
            c.review_budget = pod_hardener::config::HumanDuration(Duration::from_millis(1500));
            c.request_timeout = pod_hardener::config::HumanDuration(Duration::from_secs(1));
            c.lookup_timeout = pod_hardener::config::HumanDuration(Duration::from_secs(5));
            c.max_layer_uncompressed_bytes = 8 << 20;
        },
    ))
    .unwrap();
    let wrong_digest = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(String, &str)> = vec![
        (format!("{down}/app:1"), "cannot reach"),
        (format!("{fake}/slow:1"), "no answer"),
        (
            format!("{fake}/missing:1"),
            "404 Not Found: MANIFEST_UNKNOWN manifest unknown",
        ),
        (format!("{fake}/failing:1"), "500 Internal Server Error"),
        (format!("{fake}/basic:1"), "none are configured"),
        (
            format!("{fake}/bearer:1"),
            "the token service answered 403 Forbidden: DENIED no",
        ),
        (format!("{fake}/huge:1"), "sent more than 4194304 bytes"),
        (format!("{fake}/malformed:1"), "malformed manifest"),
        (format!("{fake}/loop:1"), "more than 5 redirects"),
        (format!("{fake}/mismatch@{wrong_digest}"), "digest mismatch"),
        (
            format!("{fake}/bomb:1"),
            "layer larger than 8388608 bytes decompressed",
        ),
        ("Not//A/Reference".to_owned(), "invalid image reference"),
    ];
    let refs: Vec<String> = cases.iter().map(|(r, _)| r.clone()).collect();
    let started = Instant::now();
    let catalog = lookups.catalog(&refs, &amd64(), None).await;
    let took = started.elapsed();
    for (reference, expected) in &cases {
        let Some(ImageLookup::Unavailable(reason)) = catalog.get(reference) else {
            panic!("{reference}: {:?}", catalog.get(reference))
        };
        assert!(
            reason.contains(expected),
            "{reference}: {reason:?} lacks {expected:?}"
        );
    }
    eprintln!("faults: {} answered in {took:.1?}", cases.len());
    // Each failure is cached for failureTTL: asking again starts nothing.
    let failed = lookups.counters().failed.load(Ordering::Relaxed);
    assert!(failed >= 10, "{failed}");
    let again = lookups.catalog(&refs, &amd64(), None).await;
    assert_eq!(again, catalog);
    assert_eq!(lookups.counters().failed.load(Ordering::Relaxed), failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_registry_costs_a_review_its_budget_only_and_the_next_review_the_answer() {
    let image = Arc::new(FakeImage::new(Vec::new()));
    let fake = fake_registry(image).await;
    let world = world().await;
    let host = world.registry.host.clone();
    let lookups = ImageLookups::new(settings(
        &[
            (
                &fake.to_string(),
                RegistryHost {
                    plain_http: true,
                    ..RegistryHost::default()
                },
            ),
            (&host, trusting(&world.certs.ca)),
        ],
        |c| {
            c.review_budget = pod_hardener::config::HumanDuration(Duration::from_millis(300));
            c.request_timeout = pod_hardener::config::HumanDuration(Duration::from_secs(2));
            c.lookup_timeout = pod_hardener::config::HumanDuration(Duration::from_secs(3));
            c.failure_ttl = pod_hardener::config::HumanDuration(Duration::from_secs(1));
        },
    ))
    .unwrap();
    let slow = format!("{fake}/slow:1");
    let fast = format!("{host}/named:1");
    // Warm the fast image, so the review below needs no network for it.
    lookups
        .catalog(std::slice::from_ref(&fast), &amd64(), None)
        .await;
    let catalog = lookups
        .catalog(&[slow.clone(), fast.clone()], &amd64(), None)
        .await;
    let Some(ImageLookup::Unavailable(reason)) = catalog.get(&slow) else {
        panic!("{catalog:?}")
    };
    assert!(reason.contains("review budget"), "{reason}");
    assert!(matches!(catalog.get(&fast), Some(ImageLookup::Found(_))));
    assert_eq!(
        lookups.counters().budget_exceeded.load(Ordering::Relaxed),
        1
    );
    // The lookup went on after the review: once it ends (the request timeout), its answer is
    // the next review's, without another request.
    let mut waited = 0;
    let reason = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += 1;
        let next = lookups
            .catalog(std::slice::from_ref(&slow), &amd64(), None)
            .await;
        match next.get(&slow) {
            Some(ImageLookup::Unavailable(r)) if !r.contains("review budget") => break r.clone(),
            other => assert!(waited < 50, "still {other:?}"),
        }
    };
    assert!(reason.contains("no answer"), "{reason}");
    // Every review that came while the lookup was in flight was answered without its result
    // (the first after its budget; how long the later ones waited is the benchmarks' business,
    // not a timed assertion's).
    let answered_without = lookups.counters().budget_exceeded.load(Ordering::Relaxed);
    assert_eq!(
        answered_without,
        u64::try_from(waited).unwrap(),
        "{waited} polls"
    );
    // Once the failure expires, it is still the answer (no review waits for the registry
    // again) while a refresh asks the registry in the background.
    let failed = lookups.counters().failed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let budget_exceeded = lookups.counters().budget_exceeded.load(Ordering::Relaxed);
    let stale = lookups
        .catalog(std::slice::from_ref(&slow), &amd64(), None)
        .await;
    assert_eq!(stale.get(&slow), Some(&ImageLookup::Unavailable(reason)));
    assert_eq!(
        lookups.counters().budget_exceeded.load(Ordering::Relaxed),
        budget_exceeded,
        "the stale failure was answered without waiting"
    );
    let mut polls = 0;
    while lookups.counters().failed.load(Ordering::Relaxed) == failed {
        polls += 1;
        assert!(polls < 50, "no refresh of the expired failure");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn restricted_state(lookups: ImageLookups) -> Arc<AppState> {
    let defaults = DefaultPolicy::default().parse().unwrap();
    let state = AppState::new(
        RequestLimits::from(&Limits::default()),
        AdmissionSettings::default(),
        NamespacePolicies::fixed(&defaults),
    )
    .with_images(Some(lookups));
    state.serving.store(true, Ordering::Release);
    Arc::new(state)
}

async fn post(state: &Arc<AppState>, path: &str, review: &Value) -> Value {
    let body = serde_json::to_vec(review).unwrap();
    let req = Request::post(path)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let rsp = routes::handle(state.clone(), RouteSet::Webhook, req)
        .await
        .unwrap_or_else(|never: Infallible| match never {});
    assert_eq!(rsp.status(), StatusCode::OK);
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    support::response_of(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_hardens_each_container_as_its_image_allows() {
    let world = world().await;
    let host = world.registry.host.clone();
    let lookups =
        ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |_| {})).unwrap();
    let state = restricted_state(lookups);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "mixed", "namespace": "apps"},
        "spec": {
            "initContainers": [{"name": "setup", "image": format!("{host}/no-user:1")}],
            "containers": [
                {"name": "app", "image": format!("{host}/named:1")},
                {"name": "sidecar", "image": format!("{host}/numeric:1")},
            ],
        },
    });
    let review = support::pod_review("uid-1", "CREATE", pod.clone(), None);
    let response = post(&state, "/mutate", &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    let hardened = support::apply_patch(&pod, &response);
    let containers = &hardened["spec"]["containers"];
    assert_eq!(
        containers[0]["securityContext"]["runAsUser"], 1001,
        "{hardened}"
    );
    assert_eq!(containers[0]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(containers[1]["securityContext"]["runAsNonRoot"], true);
    let init = &hardened["spec"]["initContainers"][0]["securityContext"];
    assert!(
        init.get("runAsNonRoot").is_none(),
        "the root image gets no runAsNonRoot: {init}"
    );
    assert!(
        hardened["spec"]["securityContext"]
            .get("runAsNonRoot")
            .is_none()
    );
    let warnings = response["warnings"].to_string();
    assert!(warnings.contains("no-user:1 sets no user"), "{warnings}");
    let record: Value = serde_json::from_str(
        hardened["metadata"]["annotations"][pod_hardener::harden::record::RECORD_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let recorded = record["images"].to_string();
    assert!(
        recorded.contains(&world.digests["named"]) && recorded.contains("1001"),
        "{record}"
    );

    // The validating webhook then denies it with PSA's message and what to do.
    let validated = post(
        &state,
        "/validate",
        &support::pod_review("uid-2", "CREATE", hardened, None),
    )
    .await;
    assert_eq!(validated["allowed"], false, "{validated}");
    let message = validated["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("runAsNonRoot") && message.contains("no-user:1"),
        "{message}"
    );

    // A Deployment of the same template is warned at apply time.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "mixed", "namespace": "apps"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod["spec"].clone()}},
    });
    let mut review = support::pod_review("uid-3", "CREATE", deployment, None);
    review["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    review["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    let warned = post(&state, "/validate", &review).await;
    assert_eq!(warned["allowed"], true);
    assert!(
        warned["warnings"].to_string().contains("no-user:1"),
        "{warned}"
    );

    let mut metrics = String::new();
    pod_hardener::server::metrics::write_image_lookups(
        &mut metrics,
        state.images.as_ref().unwrap(),
    );
    assert!(
        metrics.contains("pod_hardener_image_lookups_total{result=\"found\"} 3"),
        "{metrics}"
    );
}

/// `harden --image-lookups` on `manifest`, with `config` as the images settings file.
fn harden_with_lookups(
    config: &std::path::Path,
    cache: &std::path::Path,
    manifest: &str,
) -> (String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pod-hardener"))
        .args(["harden", "--explain", "--image-lookups"])
        .arg("--images-config")
        .arg(config)
        .arg("--image-cache")
        .arg(cache)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_decides_as_the_webhook_and_renders_again_from_its_cache() {
    let mut world = world().await;
    let host = world.registry.host.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("images.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  \"{host}\": {{ca: {}}}\n",
            world.certs.ca.display()
        ),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      initContainers:\n        - name: setup\n          image: {host}/no-user:1\n      containers:\n        - name: app\n          image: {host}/named:1\n"
    );
    let (first, explanation) = harden_with_lookups(&config, &cache, &manifest);
    let hardened: Value = serde_yaml_ng::from_str(&first).unwrap();
    let spec = &hardened["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["securityContext"]["runAsUser"], 1001,
        "{first}"
    );
    assert_eq!(
        spec["containers"][0]["securityContext"]["runAsNonRoot"], true,
        "{first}"
    );
    assert!(
        spec["initContainers"][0]["securityContext"]
            .get("runAsNonRoot")
            .is_none(),
        "{first}"
    );
    assert!(
        explanation.contains("no-user:1 sets no user"),
        "{explanation}"
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        2,
        "one cached answer per image"
    );
    // With the registry gone, the cache renders the same bytes.
    world.registry.stop();
    let (second, _) = harden_with_lookups(&config, &cache, &manifest);
    assert_eq!(second, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_tried_in_order_before_the_registry() {
    let world = world().await;
    // The registry the images name is down; of its two mirrors the first is down too, the second
    // is the real registry holding the images.
    let unused = || {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (origin, dead_mirror) = (unused(), unused());
    let mirror = world.registry.host.clone();
    let lookups = ImageLookups::new(settings(
        &[
            (
                &origin,
                RegistryHost {
                    mirrors: vec![
                        format!("https://{dead_mirror}"),
                        format!("https://{mirror}"),
                    ],
                    ..RegistryHost::default()
                },
            ),
            (&mirror, trusting(&world.certs.ca)),
        ],
        |_| {},
    ))
    .unwrap();
    let image = format!("{origin}/named:1");
    let catalog = lookups
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    let Some(ImageLookup::Found(facts)) = catalog.get(&image) else {
        panic!("{catalog:?}\n{}", world.registry.log_tail())
    };
    assert_eq!(facts.digest, world.digests["named"]);
    assert_eq!(
        facts.source, mirror,
        "the record names the mirror that answered"
    );
    assert_eq!(facts.credential, None);
    // Without the working mirror, the answer is the registry's own failure, after the mirror's.
    let without = ImageLookups::new(settings(
        &[(
            &origin,
            RegistryHost {
                mirrors: vec![format!("https://{dead_mirror}")],
                ..RegistryHost::default()
            },
        )],
        |_| {},
    ))
    .unwrap();
    let catalog = without
        .catalog(std::slice::from_ref(&image), &amd64(), None)
        .await;
    let Some(ImageLookup::Unavailable(reason)) = catalog.get(&image) else {
        panic!("{catalog:?}")
    };
    assert!(
        reason.contains(&format!("cannot reach https://{origin}")),
        "{reason}"
    );
}

/// A `kubernetes.io/dockerconfigjson` Secret `name` with `password` for `puller` at `host`.
fn pull_secret(name: &str, host: &str, password: &str) -> k8s_openapi::api::core::v1::Secret {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {host: {"auth": b64(&format!("puller:{password}"))}}});
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(&config.to_string())},
    }))
    .unwrap()
}

/// What `lookups` learn of `image` for a Pod in `namespace` that names the pull Secrets `names`.
async fn look_up_for_pod(
    lookups: &ImageLookups,
    image: &str,
    namespace: &str,
    names: &[&str],
) -> ImageLookup {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let secrets = pod_hardener::registry::PodPullSecrets::new(namespace, &names);
    let image = image.to_owned();
    let catalog = lookups
        .catalog(std::slice::from_ref(&image), &amd64(), secrets.as_ref())
        .await;
    catalog.get(&image).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_pull_secrets_open_a_private_registry_for_that_pod_only() {
    use common::control_plane::ControlPlane;
    use common::tools::{run_tool, tools};
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, PostParams};

    let world = world().await;
    let control_plane = ControlPlane::start_async().await;
    let admin = control_plane.admin_client().await;
    let host = world.auth_registry.host.clone();
    let image = format!("{host}/named:1");
    for namespace in ["team-a", "team-b", "team-c"] {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let create = |namespace: &'static str, secret: Secret| {
        let api = Api::<Secret>::namespaced(admin.clone(), namespace);
        async move { api.create(&PostParams::default(), &secret).await.unwrap() }
    };
    create("team-a", pull_secret("regcred", &host, "s3cret")).await;
    create("team-c", pull_secret("regcred", &host, "stale")).await;
    create("team-c", pull_secret("good", &host, "s3cret")).await;
    let opaque: Secret = serde_json::from_value(json!({"metadata": {"name": "opaque"},
        "type": "Opaque", "data": {".dockerconfigjson": "e30="}}))
    .unwrap();
    create("team-c", opaque).await;
    // The shipped opt-in RBAC, for pod-hardener's ServiceAccount.
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/overlays/pod-pull-secrets/rbac.yaml");
    let applied = run_tool(
        std::process::Command::new(tools().join("kubectl"))
            .arg("--kubeconfig")
            .arg(control_plane.kubeconfig_path())
            .arg("apply")
            .arg("-f")
            .arg(&rbac),
        b"",
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let as_pod_hardener = control_plane
        .client_as(
            "system:serviceaccount:pod-hardener:pod-hardener",
            &["system:serviceaccounts"],
        )
        .await;

    let with_pod_secrets = |client: kube::Client| {
        let lookups = ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |c| {
            c.pod_pull_secrets = true;
        }))
        .unwrap();
        assert!(lookups.read_pull_secrets_with(client));
        lookups
    };
    let lookups = with_pod_secrets(as_pod_hardener);
    let look = |namespace: &'static str, names: &'static [&'static str]| {
        look_up_for_pod(&lookups, &image, namespace, names)
    };
    let unavailable = |lookup: ImageLookup| match lookup {
        ImageLookup::Unavailable(reason) => reason,
        found => panic!("expected a failure: {found:?}"),
    };

    // The Pod's Secret opens the registry, and the record will say which one did.
    let ImageLookup::Found(facts) = look("team-a", &["regcred"]).await else {
        panic!("team-a's regcred: {}", world.auth_registry.log_tail())
    };
    assert_eq!(facts.passwd_uid, Some(1001));
    assert_eq!(facts.credential.as_deref(), Some("imagePullSecret:regcred"));
    assert_eq!(facts.source, host);
    // Another Pod without the Secret is not answered with what only the Secret could read.
    let reason = unavailable(look("team-b", &[]).await);
    assert!(reason.contains("none are configured"), "{reason}");
    let reason = unavailable(look("team-b", &["regcred"]).await);
    assert!(
        reason.contains("imagePullSecrets not used: regcred: not found"),
        "{reason}"
    );
    // A refused credential gives way to the next, as the kubelet tries them in turn.
    let ImageLookup::Found(facts) = look("team-c", &["regcred", "good"]).await else {
        panic!("team-c's good")
    };
    assert_eq!(facts.credential.as_deref(), Some("imagePullSecret:good"));
    let reason = unavailable(look("team-c", &["regcred"]).await);
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains("stale"), "no secret in a reason: {reason}");
    let reason = unavailable(look("team-c", &["opaque"]).await);
    assert!(reason.contains("opaque: type Opaque"), "{reason}");

    // Without the RBAC, the Secret is forbidden and the lookup says so.
    let nobody = with_pod_secrets(control_plane.client_as("nobody", &[]).await);
    let reason = unavailable(look_up_for_pod(&nobody, &image, "team-a", &["regcred"]).await);
    assert!(reason.contains("regcred: Forbidden (403)"), "{reason}");
    // Off (the default), the Pod's Secrets are never read.
    let off = ImageLookups::new(settings(&[(&host, trusting(&world.certs.ca))], |_| {})).unwrap();
    assert!(!off.read_pull_secrets_with(control_plane.admin_client().await));
    let reason = unavailable(look_up_for_pod(&off, &image, "team-a", &["regcred"]).await);
    assert!(reason.contains("none are configured"), "{reason}");

    // Through the webhook: the Pod is hardened as its image allows, and the record names the
    // endpoint and the Secret.
    let state = restricted_state(lookups.clone());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "private", "namespace": "team-a"},
        "spec": {"imagePullSecrets": [{"name": "regcred"}],
            "containers": [{"name": "app", "image": image}]},
    });
    let mut review = support::pod_review("uid-private", "CREATE", pod.clone(), None);
    review["request"]["namespace"] = json!("team-a");
    let response = post(&state, "/mutate", &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    let hardened = support::apply_patch(&pod, &response);
    let context = &hardened["spec"]["containers"][0]["securityContext"];
    assert_eq!(context["runAsUser"], 1001, "{hardened}");
    let record: Value = serde_json::from_str(
        hardened["metadata"]["annotations"][pod_hardener::harden::record::RECORD_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["images"][0]["credential"], "imagePullSecret:regcred",
        "{record}"
    );
    assert_eq!(record["images"][0]["source"], json!(host), "{record}");
}
