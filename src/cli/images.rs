//! Image lookups for `harden` and `krm` (`--image-lookups`): the webhook's lookups
//! ([`crate::registry`]), waited for in full (a post-renderer has no review deadline, and a
//! partial answer would make the output depend on registry latency), with an optional cache
//! directory so repeated renders of the same chart ask the registry once. For the same registry
//! content the output is the same: tags resolve to the digests the record names.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CliError;
use crate::harden::images::{ImageCatalog, ImageFacts, ImageLookup};
use crate::registry::{ImageLookupConfig, ImageLookups, Platform, pod_images};

/// `--image-lookups` and its settings, shared by `harden`, `krm` and `audit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImageLookupArgs {
    /// Read each image's config from its registry and decide runAsNonRoot per container as the
    /// kubelet will (README, "Image lookups"); waits for every answer.
    #[arg(long)]
    pub image_lookups: bool,
    /// With --image-lookups: a YAML file with the fields of the server's `images:` section
    /// (registries, credentialsFile, limits).
    #[arg(long, requires = "image_lookups")]
    pub images_config: Option<PathBuf>,
    /// With --image-lookups: keep what lookups learn in this directory between runs (a digest's
    /// answer for good, a tag's for tagTTL).
    #[arg(long, requires = "image_lookups")]
    pub image_cache: Option<PathBuf>,
}

impl ImageLookupArgs {
    /// The lookups asked for, if any. They own a runtime: make and drop them outside any other.
    pub fn lookups(&self) -> Result<Option<CliLookups>, CliError> {
        if !self.image_lookups {
            return Ok(None);
        }
        CliLookups::new(self.images_config.as_deref(), self.image_cache.clone()).map(Some)
    }
}

/// One cached answer on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedFacts {
    reference: String,
    platform: String,
    digest: String,
    user: String,
    passwd_uid: Option<i64>,
    /// The endpoint that answered (absent in caches written before it was recorded).
    #[serde(default)]
    source: String,
    /// The credential it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
    /// Seconds since the epoch when it was looked up.
    fetched_at: u64,
}

/// Lookups for the CLI: a runtime of its own to run them on, and the cache directory.
pub struct CliLookups {
    runtime: tokio::runtime::Runtime,
    lookups: ImageLookups,
    cache_dir: Option<PathBuf>,
}

impl std::fmt::Debug for CliLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliLookups")
            .field("lookups", &self.lookups)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

fn lookups_error(message: String) -> CliError {
    CliError::Images(message)
}

impl CliLookups {
    /// Lookups with the `images:` settings of `config_file` (a YAML file holding that section's
    /// fields; the defaults without one), always enabled, caching under `cache_dir` when given.
    pub fn new(config_file: Option<&Path>, cache_dir: Option<PathBuf>) -> Result<Self, CliError> {
        let mut config = match config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                if text.trim().is_empty() {
                    ImageLookupConfig::default()
                } else {
                    serde_yaml_ng::from_str(&text).map_err(|e| {
                        lookups_error(format!("invalid images config {}: {e}", path.display()))
                    })?
                }
            }
            None => ImageLookupConfig::default(),
        };
        config.enabled = true;
        // Wait for every answer: the whole lookup's deadline is the CLI's budget.
        config.review_budget = config.lookup_timeout;
        let settings = config
            .validate()
            .map_err(|e| lookups_error(e.to_string()))?
            .ok_or_else(|| lookups_error("image lookups are disabled".into()))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| lookups_error(format!("cannot start the lookups' runtime: {e}")))?;
        crate::server::tls::install_crypto_provider();
        let lookups =
            ImageLookups::new(settings).map_err(|e| lookups_error(format!("images: {e}")))?;
        Ok(CliLookups {
            runtime,
            lookups,
            cache_dir,
        })
    }

    /// What is known of the images of the pod spec `spec`: from the cache directory, else from
    /// the registries.
    pub fn catalog(&self, spec: &Value) -> ImageCatalog {
        let settings = self.lookups.settings();
        // No cluster here: the pull Secrets a spec names are not read.
        let found = pod_images(spec, &settings.default_platform);
        let platform = found.platform;
        let mut catalog = ImageCatalog::new();
        let mut missing = Vec::new();
        for image in found.images {
            match self.read_cached(&image, &platform) {
                Some(facts) => catalog.insert(image, ImageLookup::Found(facts)),
                None => missing.push(image),
            }
        }
        if missing.is_empty() {
            return catalog;
        }
        let fetched = self
            .runtime
            .block_on(self.lookups.catalog(&missing, &platform, None));
        for image in missing {
            if let Some(lookup) = fetched.get(&image) {
                if let ImageLookup::Found(facts) = lookup {
                    self.write_cached(&image, &platform, facts);
                }
                catalog.insert(image, lookup.clone());
            }
        }
        catalog
    }

    fn cache_path(&self, image: &str, platform: &Platform) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let key =
            crate::registry::manifest::sha256_digest(format!("{image}\n{platform}").as_bytes());
        Some(dir.join(format!("{}.json", key.trim_start_matches("sha256:"))))
    }

    fn read_cached(&self, image: &str, platform: &Platform) -> Option<ImageFacts> {
        let bytes = std::fs::read(self.cache_path(image, platform)?).ok()?;
        let cached: CachedFacts = serde_json::from_slice(&bytes).ok()?;
        if cached.reference != image || cached.platform != platform.to_string() {
            return None;
        }
        // A digest reference's answer cannot change; a tag's is kept for tagTTL.
        let pinned = image.contains("@sha256:");
        let age = now_secs().saturating_sub(cached.fetched_at);
        if !pinned && Duration::from_secs(age) >= self.lookups.settings().tag_ttl {
            return None;
        }
        Some(ImageFacts {
            digest: cached.digest,
            user: cached.user,
            passwd_uid: cached.passwd_uid,
            source: cached.source,
            credential: cached.credential,
        })
    }

    fn write_cached(&self, image: &str, platform: &Platform, facts: &ImageFacts) {
        let Some(path) = self.cache_path(image, platform) else {
            return;
        };
        let cached = CachedFacts {
            reference: image.to_owned(),
            platform: platform.to_string(),
            digest: facts.digest.clone(),
            user: facts.user.clone(),
            passwd_uid: facts.passwd_uid,
            source: facts.source.clone(),
            credential: facts.credential.clone(),
            fetched_at: now_secs(),
        };
        // Written aside and renamed: a concurrent render never reads half a file. A cache that
        // cannot be written only costs the next render a lookup.
        let partial = path.with_extension("partial");
        if let Ok(json) = serde_json::to_vec(&cached)
            && std::fs::write(&partial, json).is_ok()
        {
            let _ = std::fs::rename(&partial, &path);
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
