//! pod-hardener: a Kubernetes admission webhook that hardens Pods to the Pod Security Standards
//! and validates them exactly as Pod Security Admission does.
//!
//! The pure core ([`pss`], [`harden`], [`workload`], the decisions in [`admission`]) does no I/O;
//! the shell ([`server`], [`namespaces`], [`registry`], [`cli`]) does I/O and calls the core.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod config;
pub mod harden;
pub mod manifest;
pub mod namespaces;
pub mod policy;
pub mod pss;
pub mod registry;
pub mod server;
pub mod workload;
pub mod yaml;
