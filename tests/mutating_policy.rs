//! The generated MutatingAdmissionPolicy (`admission::mutating_policy`, the limit the API-server
//! benchmark compares the webhook with) makes the changes `/mutate` makes, judged by a real
//! kube-apiserver v1.37.2: every v1.37 PSA fixture (baseline and restricted, pass and fail) is
//! created with server-side dry run in a namespace the policy's binding selects, and its
//! in-process hardening (fill mode, the default restricted profile, no record) in one it does
//! not; the two stored specs must be equal, or differ only where the module says the policy
//! cannot follow the planner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::control_plane::ControlPlane;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use pod_hardener::admission::mutating_policy::fill_policy;
use pod_hardener::harden::{Hardener, HardeningSettings, Profile, RECORD_ANNOTATION, Scope};
use pod_hardener::pss::Level;
use pod_hardener::workload::WorkloadKind;
use serde_json::{Value, json};

include!("support/shared_data.rs");

const PLAIN: &str = "plain";
const WITH_POLICY: &str = "with-policy";
const SELECTOR_LABEL: &str = "pod-hardener.test/mutating-policy";
/// The ServiceAccount admission plugin's token volume: `kube-api-access-<5 random characters>`.
const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";

/// The Pod as the API server stores it after a dry-run create in `namespace`, or its error.
async fn dry_run(client: &kube::Client, namespace: &str, pod: &Value) -> Result<Value, String> {
    let pod: Pod = serde_json::from_value(pod.clone()).map_err(|e| e.to_string())?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&params, &pod)
        .await
        .map(|stored| serde_json::to_value(stored).unwrap())
        .map_err(|e| e.to_string())
}

/// What two stored Pods are compared on: the spec, and the annotations but the record; the
/// ServiceAccount token volume's random name suffix (a new one at each create) left out.
fn compared(stored: &Value) -> Value {
    fn without_token_suffix(value: &mut Value) {
        match value {
            Value::String(s) if s.starts_with(TOKEN_VOLUME_PREFIX) => {
                *s = TOKEN_VOLUME_PREFIX.to_owned();
            }
            Value::Array(items) => items.iter_mut().for_each(without_token_suffix),
            Value::Object(map) => map.values_mut().for_each(without_token_suffix),
            _ => {}
        }
    }
    let mut annotations = stored["metadata"]["annotations"].clone();
    if let Some(map) = annotations.as_object_mut() {
        map.remove(RECORD_ANNOTATION);
        if map.is_empty() {
            annotations = Value::Null;
        }
    }
    let mut compared = json!({"spec": stored["spec"], "annotations": annotations});
    without_token_suffix(&mut compared);
    compared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_policy_makes_the_changes_mutate_makes() {
    let control_plane = ControlPlane::start_async().await;
    let client = control_plane.admin_client().await;
    for (name, labels) in [
        (PLAIN, json!({})),
        (WITH_POLICY, json!({SELECTOR_LABEL: "on"})),
    ] {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        control_plane
            .wait_for_default_service_account(&client, name)
            .await;
    }
    let selector = json!({"matchLabels": {SELECTOR_LABEL: "on"}});
    let hardening = HardeningSettings::default();
    for object in fill_policy(Level::Restricted, &hardening, &selector) {
        let gvk = GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            object["kind"].as_str().unwrap(),
        );
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let typed: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        api.create(&PostParams::default(), &typed)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", serde_json::to_string_pretty(&object).unwrap()));
    }

    // The policy applies once the API server's informers have it.
    let base: Value = serde_yaml_ng::from_str(
        &fs::read_to_string(psa_fixtures_dir().join("baseline/v1.37/pass/base.yaml")).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    loop {
        let mapped = dry_run(&client, WITH_POLICY, &base).await;
        if mapped
            .as_ref()
            .is_ok_and(|p| p["spec"]["securityContext"]["runAsNonRoot"] == true)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the policy never applied: {mapped:?}\n{}",
            control_plane.log_tail("kube-apiserver")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let hardener = Hardener::new(Profile::for_level(Level::Restricted, &hardening));
    let outcomes = futures_util::stream::iter(psa_v1_37_fixtures())
        .map(|path| {
            let client = client.clone();
            let hardener = hardener.clone();
            async move {
                let name = path.display().to_string();
                let fixture: Value =
                    serde_yaml_ng::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
                let stored = match dry_run(&client, PLAIN, &fixture).await {
                    Ok(stored) => stored,
                    // The API server refuses a few fixtures outright (no policy involved).
                    Err(e) => return (name, Err(format!("refused as is: {e}"))),
                };
                let hardened = hardener
                    .harden(WorkloadKind::Pod, &stored, Scope::Create)
                    .unwrap()
                    .hardened_object()
                    .unwrap();
                let ours = dry_run(&client, PLAIN, &hardened).await;
                let mapped = dry_run(&client, WITH_POLICY, &fixture).await;
                (name, Ok((ours, mapped)))
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;

    let mut same = 0;
    let mut refused = Vec::new();
    let mut differ = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Err(why) => refused.push(format!("{name}: {why}")),
            Ok((Ok(ours), Ok(mapped))) => {
                if compared(&ours) == compared(&mapped) {
                    same += 1;
                } else {
                    differ.push(format!(
                        "{name}:\n  /mutate: {}\n  policy:  {}",
                        compared(&ours),
                        compared(&mapped)
                    ));
                }
            }
            Ok((ours, mapped)) => differ.push(format!(
                "{name}: /mutate {:?}, policy {:?}",
                ours.err(),
                mapped.err()
            )),
        }
    }
    eprintln!(
        "mutating policy vs /mutate: {same} fixtures the same, {} refused as is by the API server",
        refused.len()
    );
    assert!(
        differ.is_empty(),
        "{} fixtures differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(
        same > 100,
        "only {same} fixtures compared; refused: {refused:#?}"
    );
}
