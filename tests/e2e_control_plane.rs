//! Smoke test of the end-to-end harness: the real etcd, kube-apiserver and
//! kube-controller-manager start, the controller manager turns a Deployment into a
//! ReplicaSet, and the API server's built-in Pod Security Admission enforces
//! `restricted` on the Pods that ReplicaSet tries to create.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::control_plane::ControlPlane;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const NAMESPACE: &str = "restricted";
const PSA_DENIAL: &str = r#"violates PodSecurity "restricted:latest""#;
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn controllers_run_and_pod_security_enforces_restricted() {
    let started = Instant::now();
    let control_plane = ControlPlane::start_async().await;
    let ready = started.elapsed();
    let client = control_plane.admin_client().await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({
        "metadata": {
            "name": NAMESPACE,
            "labels": { "pod-security.kubernetes.io/enforce": "restricted" },
        },
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    control_plane
        .wait_for_default_service_account(&client, NAMESPACE)
        .await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "containers": [{ "name": "web", "image": "registry.k8s.io/pause:3.10" }],
                },
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let denial = wait_for_failed_create(&control_plane, &client).await;
    assert!(denial.contains("allowPrivilegeEscalation"), "{denial}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let denied_after = started.elapsed();

    // Server-side dry run goes through the same admission and persists nothing.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let compliant = serde_json::from_value(json!({
        "metadata": { "name": "compliant" },
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": { "drop": ["ALL"] },
                },
            }],
        },
    }))
    .unwrap();
    let admitted = pods
        .create(&dry_run, &compliant)
        .await
        .expect("a restricted-compliant Pod is admitted");
    assert_eq!(admitted.metadata.name.as_deref(), Some("compliant"));
    assert!(
        pods.get_opt("compliant").await.unwrap().is_none(),
        "a dry run persists nothing"
    );

    let bare = serde_json::from_value(json!({
        "metadata": { "name": "bare" },
        "spec": { "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }] },
    }))
    .unwrap();
    match pods.create(&dry_run, &bare).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains(PSA_DENIAL), "{}", status.message);
        }
        other => panic!("a bare Pod must be denied by PodSecurity, got {other:?}"),
    }

    eprintln!(
        "timings: control plane ready {:.1?}, ReplicaSet denied by PSA at {:.1?}, test body {:.1?}",
        ready,
        denied_after,
        started.elapsed()
    );
}

/// Waits until the Deployment's ReplicaSet reports that PodSecurity rejected its Pod,
/// through its `ReplicaFailure` condition or a `FailedCreate` event; returns the message.
async fn wait_for_failed_create(control_plane: &ControlPlane, client: &Client) -> String {
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + WAIT;
    loop {
        let owned = replicasets
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let owned: Vec<_> = owned
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|owner| owner.kind == "Deployment" && owner.name == "web")
            })
            .collect();
        let condition = owned
            .iter()
            .flat_map(|rs| {
                rs.status
                    .iter()
                    .flat_map(|status| status.conditions.iter().flatten())
            })
            .filter(|c| {
                c.type_.as_deref() == Some("ReplicaFailure")
                    && c.reason.as_deref() == Some("FailedCreate")
            })
            .filter_map(|c| c.message.clone())
            .find(|message| message.contains(PSA_DENIAL));
        if let Some(message) = condition {
            return message;
        }
        if !owned.is_empty() {
            let selector = "involvedObject.kind=ReplicaSet,reason=FailedCreate";
            let listed = events
                .list(&ListParams::default().fields(selector))
                .await
                .unwrap();
            if let Some(message) = listed
                .items
                .into_iter()
                .filter_map(|event| event.message)
                .find(|message| message.contains(PSA_DENIAL))
            {
                return message;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no FailedCreate by PodSecurity within {WAIT:?} (ReplicaSets: {}); \
             kube-controller-manager log:\n{}",
            owned.len(),
            control_plane.log_tail("kube-controller-manager")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
