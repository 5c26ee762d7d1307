//! The chart corpus through the real tools (issue 12): every `helm template` rendering in
//! `../shared/charts/rendered/` (or `$POD_HARDENER_CHARTS`) goes through pod-hardener by three
//! routes, and what each route produces must mean, to the real API server, exactly the
//! unhardened rendering plus the changes that pod-hardener's record on each object lists:
//!
//! 1. Helm 3 with the executable post-renderer (`--post-renderer pod-hardener
//!    --post-renderer-args harden`), the rendering packaged as a one-template chart;
//! 2. Helm 4 with the `postrenderer/v1` plugin of `packaging/helm-plugin`;
//! 3. `kustomize build` with `pod-hardener krm` as an exec transformer, compared with the same
//!    kustomization without the transformer (kustomize reads YAML by go-yaml v3's rules, which is
//!    its own business).
//!
//! "Mean to the API server" is the stored form that `kubectl create --dry-run=server -o json`
//! returns. The YAML table test checks pod-hardener's reading of every special scalar form against
//! the real kubectl and API server, and a real `helm install` of a sample of the corpus with the
//! Helm 4 plugin into a namespace that enforces `restricted` must succeed and get its Pods
//! admitted.
//!
//! Tools: helm v3, helm v4, kustomize and kubectl from `scripts/build-tools.sh` (or
//! `$POD_HARDENER_TOOLS_BIN`); the control plane from `tests/common/control_plane.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::control_plane::ControlPlane;
use common::tools::{Kubectl, run_tool, tools};
use pod_hardener::harden::Record;
use pod_hardener::workload::WorkloadKind;
use serde_json::{Value, json};

const POD_HARDENER: &str = env!("CARGO_BIN_EXE_pod-hardener");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
include!("support/shared_data.rs");

/// The namespace the renderings were made for (`helm template --namespace apps`).
const NAMESPACE: &str = "apps";
const RECORD: &str = "pod-hardener.io/hardened";

/// The renderings, sorted by file name.
fn renderings() -> Vec<(String, Vec<u8>)> {
    let dir = charts_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the chart corpus is not at {} ({e}): set POD_HARDENER_CHARTS to the directory of \
             `helm template` renderings (shared/charts/rendered)",
            dir.display()
        )
    });
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.yaml renderings in {}", dir.display());
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Kubectl<'_> {
    /// The stored form of every object of `manifests`, created with a server-side dry run; the
    /// API server's refusals as text.
    fn stored(&self, manifests: &[u8]) -> (Vec<Value>, String) {
        let o = self.run(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            manifests,
        );
        let mut objects = Vec::new();
        for value in serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>() {
            let value = value.unwrap();
            match value["items"].as_array() {
                Some(items) if value["kind"] == "List" => objects.extend(items.iter().cloned()),
                _ => objects.push(value),
            }
        }
        (objects, text(&o.stderr))
    }
}

/// A chart whose one template prints `rendering` unchanged.
fn one_template_chart(dir: &Path, rendering: &[u8]) -> PathBuf {
    let chart = dir.join("corpus");
    fs::create_dir_all(chart.join("templates")).unwrap();
    fs::create_dir_all(chart.join("files")).unwrap();
    fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: corpus\nversion: 0.1.0\n",
    )
    .unwrap();
    fs::write(chart.join("files/rendering.yaml"), rendering).unwrap();
    // The rendering may hold template syntax of its own (dashboards, alert templates): it is
    // read as a file, not parsed as a template.
    fs::write(
        chart.join("templates/rendering.yaml"),
        "{{ .Files.Get \"files/rendering.yaml\" }}\n",
    )
    .unwrap();
    chart
}

/// Helm's state directories, inside the test's directory, with the Helm 4 plugin installed.
struct Helm {
    home: PathBuf,
}

impl Helm {
    fn new(dir: &Path) -> Self {
        let home = dir.join("helm-home");
        fs::create_dir_all(&home).unwrap();
        let helm = Helm { home };
        let o = helm.run(
            "helm4",
            &[
                "plugin",
                "install",
                &format!("{ROOT}/packaging/helm-plugin"),
            ],
        );
        assert!(
            o.status.success(),
            "helm4 plugin install: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        helm
    }

    fn command(&self, helm: &str) -> Command {
        let mut c = Command::new(tools().join(helm));
        for (var, sub) in [
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
            ("HELM_CACHE_HOME", "cache"),
        ] {
            c.env(var, self.home.join(sub));
        }
        // What the plugin's post-render.sh runs.
        c.env("POD_HARDENER_BIN", POD_HARDENER);
        c
    }

    fn run(&self, helm: &str, args: &[&str]) -> Output {
        run_tool(self.command(helm).args(args), b"")
    }
}

/// The hardened manifests of one route, or why the route failed.
fn route_output(route: Route, helm: &Helm, chart: &Path) -> Result<Vec<u8>, String> {
    let chart = chart.to_str().unwrap();
    let o = match route {
        Route::Helm3 => helm.run(
            "helm3",
            &[
                "template",
                "rel",
                chart,
                "--namespace",
                NAMESPACE,
                "--post-renderer",
                POD_HARDENER,
                "--post-renderer-args",
                "harden",
            ],
        ),
        Route::Helm4 => helm.run(
            "helm4",
            &[
                "template",
                "rel",
                chart,
                "--namespace",
                NAMESPACE,
                "--post-renderer",
                "pod-hardener",
            ],
        ),
        Route::Kustomize => unreachable!("kustomize has its own baseline"),
    };
    if o.status.success() {
        Ok(o.stdout)
    } else {
        Err(format!("{route:?} failed: {}", text(&o.stderr)))
    }
}

/// `kustomize build` of the rendering without and with pod-hardener as a KRM function.
fn kustomize_outputs(dir: &Path, rendering: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let build = |name: &str, transformer: bool| {
        let k = dir.join(name);
        fs::create_dir_all(&k).unwrap();
        fs::write(k.join("rendering.yaml"), rendering).unwrap();
        let mut kustomization = String::from(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- rendering.yaml\n",
        );
        if transformer {
            kustomization.push_str("transformers:\n- harden.yaml\n");
            fs::write(
                k.join("harden.yaml"),
                format!(
                    "apiVersion: pod-hardener.io/v1alpha1\nkind: Hardening\nmetadata:\n  name: harden\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: {POD_HARDENER}\n        args: [krm]\nspec:\n  level: restricted\n"
                ),
            )
            .unwrap();
        }
        fs::write(k.join("kustomization.yaml"), kustomization).unwrap();
        let o = run_tool(
            Command::new(tools().join("kustomize"))
                .args(["build", "--enable-alpha-plugins", "--enable-exec"])
                .arg(&k),
            b"",
        );
        if o.status.success() {
            Ok(o.stdout)
        } else {
            Err(format!("kustomize build ({name}): {}", text(&o.stderr)))
        }
    };
    Ok((
        build("kustomize-plain", false)?,
        build("kustomize-hardened", true)?,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Helm3,
    Helm4,
    Kustomize,
}

/// Identity of a stored object: apiVersion, kind, namespace, name (or generateName).
fn identity(o: &Value) -> String {
    let m = &o["metadata"];
    format!(
        "{} {} {}/{}",
        o["apiVersion"].as_str().unwrap_or(""),
        o["kind"].as_str().unwrap_or(""),
        m["namespace"].as_str().unwrap_or(""),
        m["name"]
            .as_str()
            .or(m["generateName"].as_str())
            .unwrap_or("")
    )
}

/// A stored object without what the API server makes up on each create: its uid (also in a
/// Job's `controller-uid` labels), timestamps, versions, managed fields, generated names and the
/// random suffix of a Pod's service-account token volume.
fn normalized(mut o: Value) -> Value {
    let uid = o["metadata"]["uid"].as_str().map(str::to_owned);
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "generation",
        ] {
            meta.remove(field);
        }
        if meta.contains_key("generateName") {
            meta.remove("name");
        }
    }
    fn scrub(v: &mut Value, uid: Option<&str>) {
        match v {
            Value::String(s) => {
                if Some(s.as_str()) == uid {
                    *s = "<uid>".into();
                } else if s.starts_with("kube-api-access-")
                    && s.len() == "kube-api-access-".len() + 5
                {
                    *s = "kube-api-access-<random>".into();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, uid)),
            Value::Object(map) => map.values_mut().for_each(|i| scrub(i, uid)),
            _ => {}
        }
    }
    scrub(&mut o, uid.as_deref());
    o
}

/// `object` (unhardened) with the changes of `record` (the annotation's text) applied as the
/// record describes them, and the record itself.
fn with_recorded_changes(mut object: Value, record_text: &str) -> Value {
    let record: Record = serde_json::from_str(record_text).unwrap();
    let kind = WorkloadKind::of_document(&object).expect("a recorded object is a workload");
    let spec_pointer: String = kind
        .pod_spec_tokens()
        .iter()
        .map(|t| format!("/{t}"))
        .collect();
    let meta_pointer: String = kind
        .pod_metadata_tokens()
        .iter()
        .map(|t| format!("/{t}"))
        .collect();
    for change in record.changes {
        let control = change.control.as_str();
        let target = change.target.as_str();
        let value = change.value;
        let spec = object.pointer_mut(&spec_pointer).unwrap();
        // The pod spec, or the container the change targets (`containers/NAME`).
        let holder: &mut Value = if target == "pod" {
            spec
        } else {
            let (list, name) = target.split_once('/').unwrap();
            spec[list]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("no {target}"))
        };
        let security_context = "securityContext";
        let field = |holder: &Value, key: &str| holder.get(key).cloned().unwrap_or(json!({}));
        match control {
            "tmpVolume" => {
                let list = if target == "pod" {
                    "volumes"
                } else {
                    "volumeMounts"
                };
                let mut items = holder.get(list).cloned().unwrap_or(json!([]));
                // The Pod's own volumes come first: the API server's service-account admission
                // appends its token volume (and mounts) after them on create.
                let items_list = items.as_array_mut().unwrap();
                let injected = items_list
                    .iter()
                    .position(|i| {
                        i["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("kube-api-access-"))
                    })
                    .unwrap_or(items_list.len());
                items_list.insert(injected, value);
                holder[list] = items;
            }
            "capabilities" => {
                let mut sc = field(holder, security_context);
                let mut caps = sc.get("capabilities").cloned().unwrap_or(json!({}));
                let mut drop = caps.get("drop").cloned().unwrap_or(json!([]));
                drop.as_array_mut().unwrap().push(value);
                caps["drop"] = drop;
                sc["capabilities"] = caps;
                holder[security_context] = sc;
            }
            _ => {
                let mut sc = field(holder, security_context);
                sc[control] = value;
                holder[security_context] = sc;
            }
        }
    }
    let meta = object.pointer_mut(&meta_pointer).unwrap();
    let mut annotations = meta.get("annotations").cloned().unwrap_or(json!({}));
    annotations[RECORD] = json!(record_text);
    meta["annotations"] = annotations;
    object
}

/// The record pod-hardener left on a stored object (the annotation's text), if any.
fn record_of(object: &Value) -> Option<&str> {
    let kind = WorkloadKind::of_document(object)?;
    let meta_pointer: String = kind
        .pod_metadata_tokens()
        .iter()
        .map(|t| format!("/{t}"))
        .collect();
    object
        .pointer(&meta_pointer)?
        .get("annotations")?
        .get(RECORD)?
        .as_str()
}

/// Checks that `hardened` is `baseline` plus exactly the recorded changes; returns how many
/// objects were hardened.
fn compare(baseline: Vec<Value>, hardened: Vec<Value>) -> Result<usize, String> {
    let index = |objects: Vec<Value>| {
        let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for o in objects {
            map.entry(identity(&o)).or_default().push(normalized(o));
        }
        map
    };
    let (baseline, hardened) = (index(baseline), index(hardened));
    let (before, after): (Vec<&String>, Vec<&String>) =
        (baseline.keys().collect(), hardened.keys().collect());
    if before != after {
        return Err(format!(
            "different objects:\n  unhardened {before:?}\n  hardened   {after:?}"
        ));
    }
    let mut changed = 0;
    for (id, objects) in &hardened {
        for (h, b) in objects.iter().zip(&baseline[id]) {
            let expected = match record_of(h) {
                Some(record) => {
                    changed += 1;
                    with_recorded_changes(b.clone(), record)
                }
                None => b.clone(),
            };
            if &expected != h {
                return Err(format!(
                    "{id}: not the unhardened object plus its recorded changes\n  expected {expected}\n  got      {h}"
                ));
            }
        }
    }
    Ok(changed)
}

#[test]
fn every_chart_means_the_same_through_helm_3_helm_4_and_kustomize() {
    let corpus = renderings();
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    kubectl.must(&["create", "namespace", NAMESPACE], b"");
    let dir = control_plane.dir().join("charts");
    let helm = Helm::new(&dir);
    let mut passed = BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    let mut hardened = BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for (name, rendering) in &corpus {
        kubectl.install_crds(rendering);
        let (baseline, refused) = kubectl.stored(rendering);
        let chart_dir = dir.join(name);
        let chart = one_template_chart(&chart_dir, rendering);
        for route in [Route::Helm3, Route::Helm4, Route::Kustomize] {
            let outcome = (|| {
                let (baseline, output) = match route {
                    Route::Kustomize => {
                        let (plain, hardened) = kustomize_outputs(&chart_dir, rendering)?;
                        (kubectl.stored(&plain).0, hardened)
                    }
                    _ => (baseline.clone(), route_output(route, &helm, &chart)?),
                };
                let (stored, refused_after) = kubectl.stored(&output);
                if refused_after != refused && route != Route::Kustomize {
                    return Err(format!(
                        "the API server refuses differently:\n  before: {refused}\n  after:  {refused_after}"
                    ));
                }
                let changed = compare(baseline.clone(), stored.clone())?;
                // The comparison itself must see a difference hardening did not record.
                let mut tampered = stored;
                if let Some(object) = tampered.iter_mut().find(|o| record_of(o).is_some()) {
                    object["metadata"]["labels"]["not-recorded"] = json!("x");
                    if compare(baseline, tampered).is_ok() {
                        return Err("the comparison misses an unrecorded change".into());
                    }
                }
                Ok(changed)
            })();
            match outcome {
                Ok(changed) => {
                    *passed.entry(route_name(route)).or_default() += 1;
                    *hardened.entry(route_name(route)).or_default() += changed;
                }
                Err(e) => failures.push(format!("{name} via {}: {e}", route_name(route))),
            }
        }
    }
    for route in [Route::Helm3, Route::Helm4, Route::Kustomize] {
        let name = route_name(route);
        println!(
            "{name}: charts: {}/{} ({} workloads hardened)",
            passed.get(name).copied().unwrap_or(0),
            corpus.len(),
            hardened.get(name).copied().unwrap_or(0)
        );
    }
    println!("corpus checked in {:.0?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Helm3 => "helm 3 exec post-renderer",
        Route::Helm4 => "helm 4 postrenderer/v1 plugin",
        Route::Kustomize => "kustomize exec KRM function",
    }
}

/// Every scalar form go-yaml v2 resolves specially (and near misses), as a value and as a key.
const SCALAR_FORMS: &[&str] = &[
    "y",
    "Y",
    "yes",
    "Yes",
    "YES",
    "n",
    "N",
    "no",
    "No",
    "NO",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "yEs",
    "oN",
    "null",
    "Null",
    "NULL",
    "~",
    "nULL",
    "0",
    "42",
    "-42",
    "+42",
    "0755",
    "-0755",
    "0o755",
    "0O755",
    "0x1F",
    "0X1f",
    "-0x1F",
    "0b101",
    "-0b101",
    "1_000",
    "1__0",
    "_1",
    "0_755",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "08",
    "0778",
    "1.5",
    "-1.5",
    "1.",
    ".5",
    "-.5",
    "1e3",
    "1E+3",
    "1_000.5",
    "6.02e23",
    ".5_5",
    "._5",
    "1e400",
    "nan",
    "inf",
    "Infinity",
    ".",
    "1:20",
    "190:20:30",
    "2001-12-14",
    "2001-12-14T21:59:43.10Z",
    "2001-12-14 21:59:43.10",
    "=",
    "1.2.3",
    "0x",
    "0b102",
    "+",
    "12:30",
    "v1",
    "0.0.0.0",
    "'no'",
    "\"yes\"",
    "\"0755\"",
    "'1_000'",
    "!!str 0755",
    "!!str yes",
    "!!int \"0755\"",
    "!!float 1",
    "!!bool \"on\"",
    "!!binary aGVsbG8=",
    "!custom 12",
    "! 12",
    "!!timestamp 2001-12-14",
];

/// Forms that are only values (no key form), or documents of their own.
const DOCUMENT_FORMS: &[&str] = &[
    "value: |\n  no\n  0755\n",
    "value: >-\n  yes\n",
    "key: {.nan: a, .inf: b, -.inf: c, 1e6: d, 0.1: e, 1.5: f, 0x10: g}\n",
    "value: {<<: {a: 1, b: 1}, b: 2}\n",
    "value: {b: 2, <<: {a: 1, b: 1}}\n",
    "value: {<<: [{a: 1}, {a: 2, c: 2}]}\n",
    "value: {\"<<\": {a: 1}}\n",
    "value: &x {a: 1}\nkey: *x\n",
    "value: {a: 1, a: 2}\n",
];

/// Forms pod-hardener must refuse, as kubectl does.
const REFUSED_FORMS: &[&str] = &[
    "value: .nan\n",
    "value: -.inf\n",
    "value: !!int abc\n",
    "value: !!binary aGVsbG8\n",
    "value: *missing\n",
    "value: {<<: 1}\n",
    "key: {~: a}\n",
];

fn scalar_document(name: &str, body: &str) -> String {
    format!(
        "apiVersion: yamltable.pod-hardener.io/v1\nkind: Scalar\nmetadata:\n  name: {name}\n{body}"
    )
}

/// Numbers compare as numbers (the API server stores JSON numbers as int64 or float64).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn the_yaml_table_reads_as_kubectl_and_the_api_server_read_it() {
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    kubectl.install_crds(
        b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: scalars.yamltable.pod-hardener.io\nspec:\n  group: yamltable.pod-hardener.io\n  scope: Cluster\n  names: {plural: scalars, singular: scalar, kind: Scalar}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    let mut documents: Vec<String> = Vec::new();
    for (i, form) in SCALAR_FORMS.iter().enumerate() {
        documents.push(scalar_document(
            &format!("value-{i}"),
            &format!("value: {form}\n"),
        ));
        // Key forms: those whose key go-yaml can turn into a JSON key.
        if !matches!(
            *form,
            "~" | "null" | "Null" | "NULL" | "9223372036854775808" | "18446744073709551615"
        ) && !form.starts_with('!')
        {
            documents.push(scalar_document(
                &format!("key-{i}"),
                &format!("key: {{{form}: k}}\n"),
            ));
        }
    }
    for (i, body) in DOCUMENT_FORMS.iter().enumerate() {
        documents.push(scalar_document(&format!("document-{i}"), body));
    }
    let stream = documents.join("---\n");
    let ours = pod_hardener::manifest::read_documents(stream.as_bytes()).unwrap();
    let (stored, refused) = kubectl.stored(stream.as_bytes());
    assert_eq!(
        stored.len(),
        documents.len(),
        "kubectl refused some: {refused}"
    );
    let mut checked = 0;
    for (doc, theirs) in ours.iter().zip(&stored) {
        assert_eq!(doc.object["metadata"]["name"], theirs["metadata"]["name"]);
        for field in ["value", "key"] {
            assert!(
                same_json(&doc.object[field], &theirs[field]),
                "{}: pod-hardener reads {field} as {}, kubectl and the API server as {}\nin:\n{}",
                theirs["metadata"]["name"],
                doc.object[field],
                theirs[field],
                documents[checked]
            );
        }
        checked += 1;
    }
    for (i, body) in REFUSED_FORMS.iter().enumerate() {
        let document = scalar_document(&format!("refused-{i}"), body);
        assert!(
            pod_hardener::manifest::read_documents(document.as_bytes()).is_err(),
            "pod-hardener reads {body}"
        );
        let o = kubectl.run(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            document.as_bytes(),
        );
        assert!(
            !o.status.success(),
            "kubectl accepts {body}: {}",
            text(&o.stdout)
        );
    }
    println!(
        "yaml table: {checked} documents read alike, {} refused alike",
        REFUSED_FORMS.len()
    );
}

/// Charts of the corpus whose workloads are all admitted at `restricted` once hardened, and
/// that register no webhooks (which would intercept the test's own requests).
const INSTALL_SAMPLE: &[&str] = &[
    "jaeger",
    "prometheus-mongodb-exporter",
    "prometheus-statsd-exporter",
];

#[test]
fn helm_4_installs_a_sample_of_the_corpus_into_a_restricted_namespace() {
    let corpus: BTreeMap<String, Vec<u8>> = renderings().into_iter().collect();
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    kubectl.must(&["create", "namespace", NAMESPACE], b"");
    kubectl.must(
        &[
            "label",
            "namespace",
            NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
        b"",
    );
    let dir = control_plane.dir().join("install");
    let helm = Helm::new(&dir);
    let kubeconfig = control_plane.kubeconfig_path().to_str().unwrap().to_owned();
    let mut deployments = 0;
    for name in INSTALL_SAMPLE {
        let rendering = &corpus[*name];
        let chart = one_template_chart(&dir.join(name), rendering);
        let o = helm.run(
            "helm4",
            &[
                "install",
                name,
                chart.to_str().unwrap(),
                "--namespace",
                NAMESPACE,
                "--kubeconfig",
                &kubeconfig,
                "--post-renderer",
                "pod-hardener",
            ],
        );
        assert!(
            o.status.success(),
            "helm install {name}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        // Unhardened, the chart's first Deployment's Pod is denied here (the control; after the
        // install, which creates its ServiceAccount).
        let deployment = pod_hardener::manifest::read_documents(rendering)
            .unwrap()
            .into_iter()
            .map(|d| d.object)
            .find(|o| o["kind"] == "Deployment")
            .expect("the sample charts have a Deployment");
        let probe = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("probe-{name}"), "namespace": NAMESPACE},
            "spec": deployment["spec"]["template"]["spec"],
        });
        let o = kubectl.run(
            &["create", "--dry-run=server", "-f", "-"],
            &serde_json::to_vec(&probe).unwrap(),
        );
        assert!(
            !o.status.success()
                && text(&o.stderr).contains("violates PodSecurity \"restricted:latest\""),
            "{name}: the unhardened Pod is not denied: {}",
            text(&o.stderr)
        );
        deployments += 1;
    }
    // Every Deployment's ReplicaSet gets its Pods admitted (no node runs them; admission is the
    // point), and none was refused.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pods: Value = serde_json::from_str(
            &kubectl.must(&["get", "pods", "-n", NAMESPACE, "-o", "json"], b""),
        )
        .unwrap();
        let owned = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet")
            .count();
        if owned >= deployments {
            break;
        }
        let events = kubectl.must(
            &[
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                "reason=FailedCreate",
                "-o",
                "json",
            ],
            b"",
        );
        let events: Value = serde_json::from_str(&events).unwrap();
        assert!(
            events["items"].as_array().unwrap().is_empty(),
            "Pods refused: {events}"
        );
        assert!(
            Instant::now() < deadline,
            "only {owned} of {deployments} Deployments' Pods created"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "helm install: {deployments}/{} sample charts installed with their Pods admitted at restricted",
        INSTALL_SAMPLE.len()
    );
}
