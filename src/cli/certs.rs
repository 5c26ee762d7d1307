//! `pod-hardener certs`: a CA and a serving certificate for the webhook Service, written to
//! files, with the caBundle printed on stdout.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::certs::{self, CertRequest, CertsError};

/// `certs` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, default_value = "pod-hardener")]
    pub service: String,
    /// The Service's namespace.
    #[arg(long, default_value = "pod-hardener")]
    pub namespace: String,
    /// Extra DNS names (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// Extra IP addresses (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ip: Vec<IpAddr>,
    /// Where to write ca.crt, tls.crt and tls.key.
    #[arg(long, default_value = "certs/out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Validity of the serving certificate in days.
    #[arg(long, default_value_t = certs::DEFAULT_VALIDITY_DAYS)]
    pub days: u32,
}

/// Generates and writes the files; returns the caBundle (base64 of the CA certificate).
pub fn run(args: &CertsArgs) -> Result<(String, certs::WrittenFiles), CertsError> {
    let mut req = CertRequest::new(args.service.clone(), args.namespace.clone());
    req.extra_dns = args.dns.clone();
    req.extra_ips = args.ip.clone();
    req.validity_days = args.days;
    req.ca_validity_days = req.ca_validity_days.max(args.days);
    let generated = certs::generate(&req)?;
    let written = certs::write_files(&generated, &args.out_dir)?;
    Ok((generated.ca_bundle_base64(), written))
}
