//! Any pod JSON → the planner: the patch applies; re-planning the result changes nothing; fill
//! mode never alters a field that was set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_hardener::harden::{Hardener, Profile, Scope};
use pod_hardener::workload::WorkloadKind;
use serde_json::Value;

/// Every (pointer, value) leaf of `v`.
fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaves(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{at}/{i}"), out);
            }
        }
        // Null, `{}` and `[]` hold no value of their own: hardening may fill them.
        Value::Null | Value::Object(_) | Value::Array(_) => {}
        other => out.push((at, other.clone())),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_json::from_slice::<Value>(data) else { return };
    let hardener = Hardener::new(Profile::restricted());
    let Ok(h) = hardener.harden(WorkloadKind::Pod, &object, Scope::Create) else { return };
    let hardened = h.hardened_object().expect("the patch applies");

    let mut before = Vec::new();
    leaves(&object["spec"], String::new(), &mut before);
    for (pointer, value) in before {
        // Fill mode never changes a set leaf (arrays may only grow, so indexes stay valid).
        assert_eq!(hardened["spec"].pointer(&pointer), Some(&value), "fill mode changed /spec{pointer}");
    }

    let again = hardener.harden(WorkloadKind::Pod, &hardened, Scope::Create).expect("the hardened pod still parses");
    assert!(again.patch.0.is_empty(), "re-planning a hardened pod patched {:?}", again.patch);
});
