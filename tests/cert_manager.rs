//! The cert-manager install (`manifests/overlays/cert-manager`, and the Helm chart with
//! `certificate.certManager.enabled=true`) against cert-manager's own API: its real
//! CustomResourceDefinitions (v1.21.2, `scripts/fetch-cert-manager-crds.sh`, or
//! `$POD_HARDENER_CERT_MANAGER_CRDS`) in a real kube-apiserver, the objects applied with strict
//! field validation, so a misspelled or misplaced field is an error rather than a field the API
//! server prunes in silence; then the references cert-manager and its cainjector follow, read
//! back from what the API server stored.
//!
//! cert-manager's controller and cainjector cannot run here: they are nested Go modules
//! (`controller-binary`, `cainjector-binary`) that this machine's module proxy does not serve.
//! What issuing and injecting then do is what the manual install does, and scenario 2 of
//! `tests/e2e_node.rs` runs that.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::control_plane::ControlPlane;
use common::tools::{Kubectl, built, run_tool, tools};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const OVERLAY: &str = "manifests/overlays/cert-manager";
const CHART: &str = "manifests/helm/pod-hardener";
const NAMESPACE: &str = "pod-hardener";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn crds_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        built(
            "POD_HARDENER_CERT_MANAGER_CRDS",
            "scripts/fetch-cert-manager-crds.sh",
        )
    })
}

/// Runs kubectl, which must succeed without a warning: strict validation turns an unknown
/// field into an error, and anything else the API server warns about is a finding too.
fn must_quietly(kubectl: &Kubectl<'_>, args: &[&str], stdin: &[u8]) -> String {
    let o = kubectl.run(args, stdin);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "kubectl {args:?}: {stderr}");
    assert!(
        !stderr.contains("Warning"),
        "kubectl {args:?} warned: {stderr}"
    );
    text(&o.stdout)
}

/// Server-side apply with strict field validation: what an operator's `kubectl apply` does, minus
/// the leniency (`--validate=strict` refuses unknown and duplicate fields).
const STRICT_APPLY: &[&str] = &["apply", "--server-side", "--validate=strict"];

/// cert-manager's cert-manager.io CRDs, created and established.
fn install_cert_manager_crds(kubectl: &Kubectl<'_>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crds_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        4,
        "cert-manager CRDs in {}",
        crds_dir().display()
    );
    let mut crds = Vec::new();
    for file in &files {
        crds.extend(std::fs::read(file).unwrap());
        crds.extend(b"\n---\n");
    }
    // As `Kubectl::install_crds` does, and with no warning from the API server about them.
    let wait = [
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        "-",
    ];
    for args in [&["apply", "--server-side", "-f", "-"][..], &wait[..]] {
        must_quietly(kubectl, args, &crds);
    }
}

#[test]
fn the_cert_manager_install_is_what_cert_managers_api_accepts() {
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    install_cert_manager_crds(&kubectl);

    // The control first: strict validation is live, so a field cert-manager's schema does not
    // have is refused and named, where a lenient apply would store the Certificate without it.
    must_quietly(&kubectl, &["create", "namespace", "strictness"], b"");
    let misspelled = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "misspelled", "namespace": "strictness"},
        "spec": {
            "secretName": "s",
            "dnsName": ["a.example"],
            "issuerRef": {"name": "i", "kind": "Issuer"},
        },
    });
    let mut args = STRICT_APPLY.to_vec();
    args.extend(["-f", "-"]);
    let refused = kubectl.run(&args, misspelled.to_string().as_bytes());
    assert!(!refused.status.success(), "a misspelled field was accepted");
    assert!(
        text(&refused.stderr).contains("dnsName"),
        "the refusal does not name the field: {}",
        text(&refused.stderr)
    );

    // The overlay, as the README installs it.
    let mut args = STRICT_APPLY.to_vec();
    args.extend(["-k", OVERLAY]);
    must_quietly(&kubectl, &args, b"");

    // What cert-manager and its cainjector follow, as stored.
    let get_json = |args: &[&str]| -> Value {
        serde_json::from_str(&must_quietly(&kubectl, args, b"")).unwrap()
    };
    let get = |what: &str| get_json(&["get", "-n", NAMESPACE, what, "-o", "json"]);
    let issuers = get("issuers.cert-manager.io");
    let certificates = get("certificates.cert-manager.io");
    let named = |list: &Value, name: &str| -> Value {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not stored: {list}"))
    };
    let self_signed = named(&issuers, "pod-hardener-selfsigned");
    assert_eq!(self_signed["spec"]["selfSigned"], json!({}));
    let ca = named(&certificates, "pod-hardener-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "pod-hardener-selfsigned");
    let ca_issuer = named(&issuers, "pod-hardener-ca");
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca["spec"]["secretName"]
    );
    let serving = named(&certificates, "pod-hardener-serving");
    assert_eq!(serving["spec"]["issuerRef"]["name"], "pod-hardener-ca");
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    assert_eq!(serving["spec"]["privateKey"]["rotationPolicy"], "Always");

    // The Secret it writes is the one the Deployment mounts ...
    let deployment = get("deployment/pod-hardener");
    // (a Secret volume, or a Secret source of a projected volume: the manifests use the latter)
    let mut mounted: Vec<&Value> = Vec::new();
    for volume in deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
    {
        if let Some(secret) = volume.get("secret") {
            mounted.push(&secret["secretName"]);
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(secret) = source.get("secret") {
                mounted.push(&secret["name"]);
            }
        }
    }
    assert!(
        mounted.contains(&&serving["spec"]["secretName"]),
        "the Deployment mounts {mounted:?}, cert-manager writes {}",
        serving["spec"]["secretName"]
    );

    // ... and names the Service the API server calls, for each webhook configuration, which
    // also carries the annotation cainjector reads to fill in the caBundle.
    let dns_names = serving["spec"]["dnsNames"].as_array().unwrap();
    let injected_from = format!("{NAMESPACE}/pod-hardener-serving");
    for kind in [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ] {
        let list = get_json(&["get", kind, "-o", "json"]);
        let ours: Vec<&Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string())
            .collect();
        assert_eq!(ours.len(), 1, "{kind}: {list}");
        let configuration = ours[0];
        assert_eq!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            injected_from.as_str()
        );
        for webhook in configuration["webhooks"].as_array().unwrap() {
            let service = &webhook["clientConfig"]["service"];
            let host = format!(
                "{}.{}.svc",
                service["name"].as_str().unwrap(),
                service["namespace"].as_str().unwrap()
            );
            assert!(
                dns_names.iter().any(|n| n == host.as_str()),
                "{kind} calls {host}, the certificate names {dns_names:?}"
            );
            assert!(
                webhook["clientConfig"].get("caBundle").is_none(),
                "{kind}: a caBundle in the manifests would fight cainjector"
            );
        }
    }

    // The chart with cert-manager on renders the same objects (tests/helm_chart.rs); here its
    // rendering goes through the same strict validation, as `helm install` would send it.
    let mut helm = Command::new(tools().join("helm3"));
    helm.current_dir(ROOT).args([
        "template",
        "pod-hardener",
        CHART,
        "--namespace",
        "default",
        "--set",
        "certificate.certManager.enabled=true",
    ]);
    let rendered = run_tool(&mut helm, b"");
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let mut args = STRICT_APPLY.to_vec();
    args.extend(["--dry-run=server", "--force-conflicts", "-f", "-"]);
    must_quietly(&kubectl, &args, &rendered.stdout);
}
