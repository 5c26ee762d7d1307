//! Helpers shared by the integration tests that need them (`mod common;`).

// Each integration test is its own crate and uses only part of these helpers.
#![allow(dead_code)]

pub mod control_plane;
pub mod node;
pub mod registry;
pub mod sandbox;
pub mod tools;
pub mod webhook;
