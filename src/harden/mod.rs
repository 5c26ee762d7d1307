//! The hardening planner: given a PodSpec (from a Pod or any workload template) and the
//! namespace's profile, compute the changes that make it restricted-compliant without
//! overriding the workload's explicit choices, as an RFC 6902 patch plus a record for auditors.
//!
//! - [`Hardener`]: the one entry point: an object in, its [`Hardening`] out.
//! - [`control`]: the named controls.
//! - [`images`]: what an image's user means for `runAsNonRoot`, as the kubelet decides.
//! - [`profile`]: which controls apply at which level, fill or override mode.
//! - [`opt_out`]: the `pod-hardener.io/skip` annotation.
//! - `planner`: one function per control, producing a [`Plan`].
//! - [`record`]: the `pod-hardener.io/hardened` annotation.
//! - `patch`: a plan as a minimal JSON Patch rooted at any pod-spec pointer.

pub mod control;
mod hardener;
pub mod images;
pub mod opt_out;
mod patch;
pub mod plan;
mod planner;
pub mod profile;
pub mod record;

pub use control::{CelConditions, Control};
pub use hardener::{HardenError, Hardener, Hardening};
pub use images::{ImageCatalog, ImageFacts, ImageLookup};
pub use opt_out::{OptOuts, SKIP_ANNOTATION};
pub use plan::{Change, Edit, Plan, Skip, SkipReason, Target};
pub use planner::{Scope, TMP_MOUNT_PATH, TMP_VOLUME_NAME};
pub use profile::{HardeningSettings, Mode, Profile};
pub use record::{RECORD_ANNOTATION, Record};

#[cfg(test)]
mod tests;
