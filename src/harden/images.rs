//! What container images say about their user, and what that means for `runAsNonRoot`.
//!
//! The kubelet decides whether a container with `runAsNonRoot: true` and no `runAsUser` in effect
//! may start from its image's configured user (`verifyRunAsNonRoot` in the kubelet's
//! `kuberuntime_container.go`, fed by `getImageUser`): an image with no user, or user `0`, "will
//! run as root"; a user that is a name "cannot verify user is non-root"; a non-zero number
//! starts. The runtime reads the image's `User` as `user[:group]` and takes the part before the
//! colon as a number when it parses as one (containerd's CRI `getUserFromImage`), else as a name.
//! This module is pure: the lookups that fill an [`ImageCatalog`] happen outside the core.

use std::collections::BTreeMap;

/// An image's user as the container runtime will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    /// No user, or UID 0.
    Root,
    /// A non-zero numeric UID: `runAsNonRoot` can be verified.
    Uid(i64),
    /// A user name: the kubelet cannot verify it unless `runAsUser` makes the UID explicit.
    Name(String),
}

impl ImageUser {
    /// Reads an image config's `User` (`user`, `uid`, `user:group`, `uid:gid`, or empty).
    pub fn parse(config_user: &str) -> Self {
        let user = config_user.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return ImageUser::Root;
        }
        // Go's strconv.ParseInt(user, 10, 64), as containerd uses it: an optional sign, digits.
        match user.parse::<i64>() {
            Ok(0) => ImageUser::Root,
            Ok(uid) => ImageUser::Uid(uid),
            Err(_) => ImageUser::Name(user.to_owned()),
        }
    }
}

/// What a lookup learned about one image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The digest of the image manifest the config came from (for the record: tags move).
    pub digest: String,
    /// The config's `User`, as written (may be empty).
    pub user: String,
    /// For a named user: its UID in the image's `/etc/passwd`, if the file names it.
    pub passwd_uid: Option<i64>,
    /// The endpoint that answered, `host[:port]`: the registry's, or a mirror's (empty when
    /// unknown, as for a cache primed by hand).
    pub source: String,
    /// The credential it accepted: `imagePullSecret:<name>` or `credentialsFile`; `None` when
    /// the registry answered anonymously.
    pub credential: Option<String>,
}

/// The outcome of looking an image up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    /// The config was read.
    Found(ImageFacts),
    /// It could not be read (timeout, 401, 404, registry down...): hardening goes on as if the
    /// image were unknown, and the reason is reported.
    Unavailable(String),
}

/// Lookups for the images of one object, keyed by the image reference exactly as the pod spec
/// writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCatalog {
    images: BTreeMap<String, ImageLookup>,
}

impl ImageCatalog {
    /// An empty catalog: every image unknown.
    pub fn new() -> Self {
        ImageCatalog::default()
    }

    /// Records what was learned about `image`.
    pub fn insert(&mut self, image: impl Into<String>, lookup: ImageLookup) {
        self.images.insert(image.into(), lookup);
    }

    /// What is known about `image`.
    pub fn get(&self, image: &str) -> Option<&ImageLookup> {
        self.images.get(image)
    }
}

/// How a container without an explicit `runAsUser` will fare under `runAsNonRoot: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserVerdict {
    /// The kubelet can verify it (a non-zero numeric image user).
    Verifiable,
    /// The image names a user whose UID its `/etc/passwd` gives (non-zero): setting `runAsUser`
    /// to it runs the same user, now verifiable.
    NamedUid {
        /// The name from the image config.
        name: String,
        /// Its UID.
        uid: i64,
    },
    /// The image runs as root (no user, `0`, or a name whose UID is 0).
    Root(String),
    /// The image names a user that its `/etc/passwd` does not: the kubelet cannot verify it.
    Unverifiable(String),
    /// Nothing is known about the image: decided as if no lookup existed.
    Unknown(String),
}

/// The verdict for a container running `image`, as the kubelet will see it.
pub fn verdict(image: &str, lookup: Option<&ImageLookup>) -> UserVerdict {
    let facts = match lookup {
        Some(ImageLookup::Found(facts)) => facts,
        Some(ImageLookup::Unavailable(reason)) => {
            return UserVerdict::Unknown(format!("image {image}: {reason}"));
        }
        None => return UserVerdict::Unknown(format!("image {image}: not looked up")),
    };
    match ImageUser::parse(&facts.user) {
        ImageUser::Uid(_) => UserVerdict::Verifiable,
        ImageUser::Root if facts.user.is_empty() => {
            UserVerdict::Root(format!("image {image} sets no user, so it runs as root"))
        }
        ImageUser::Root => UserVerdict::Root(format!(
            "image {image} runs as user {:?}, which is root",
            facts.user
        )),
        ImageUser::Name(name) => match facts.passwd_uid {
            Some(0) => UserVerdict::Root(format!(
                "image {image} runs as user {name:?}, UID 0 in its /etc/passwd"
            )),
            Some(uid) => UserVerdict::NamedUid { name, uid },
            None => UserVerdict::Unverifiable(format!(
                "image {image} runs as user {name:?}, which its /etc/passwd does not list, so the kubelet cannot verify it is non-root"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_user_as_the_runtime_does() {
        for (user, expected) in [
            ("", ImageUser::Root),
            ("0", ImageUser::Root),
            ("0:0", ImageUser::Root),
            ("0:1000", ImageUser::Root),
            ("+0", ImageUser::Root),
            ("1000", ImageUser::Uid(1000)),
            ("1000:1000", ImageUser::Uid(1000)),
            ("65532:65532", ImageUser::Uid(65532)),
            ("+5", ImageUser::Uid(5)),
            ("-1", ImageUser::Uid(-1)),
            (":1000", ImageUser::Root),
            ("root", ImageUser::Name("root".into())),
            ("nginx", ImageUser::Name("nginx".into())),
            ("app:app", ImageUser::Name("app".into())),
            ("1000x", ImageUser::Name("1000x".into())),
            (
                "99999999999999999999",
                ImageUser::Name("99999999999999999999".into()),
            ),
        ] {
            assert_eq!(ImageUser::parse(user), expected, "{user:?}");
        }
    }

    fn found(user: &str, passwd_uid: Option<i64>) -> ImageLookup {
        ImageLookup::Found(ImageFacts {
            digest: "sha256:0".into(),
            user: user.into(),
            passwd_uid,
            ..ImageFacts::default()
        })
    }

    #[test]
    fn decides_as_the_kubelet_will() {
        type Expectation = fn(&UserVerdict) -> bool;
        let cases: [(ImageLookup, Expectation); 8] = [
            (found("1000", None), |v| *v == UserVerdict::Verifiable),
            (
                found("", None),
                |v| matches!(v, UserVerdict::Root(d) if d.contains("sets no user")),
            ),
            (found("0", None), |v| matches!(v, UserVerdict::Root(_))),
            (
                found("root", Some(0)),
                |v| matches!(v, UserVerdict::Root(d) if d.contains("UID 0")),
            ),
            (found("app", Some(1001)), |v| {
                *v == UserVerdict::NamedUid {
                    name: "app".into(),
                    uid: 1001,
                }
            }),
            (found("app:app", Some(1001)), |v| {
                matches!(v, UserVerdict::NamedUid { uid: 1001, .. })
            }),
            (
                found("nobody", None),
                |v| matches!(v, UserVerdict::Unverifiable(d) if d.contains("\"nobody\"")),
            ),
            (ImageLookup::Unavailable("401 Unauthorized".into()), |v| {
                *v == UserVerdict::Unknown("image registry.example/app:1: 401 Unauthorized".into())
            }),
        ];
        for (lookup, expected) in cases {
            let v = verdict("registry.example/app:1", Some(&lookup));
            assert!(expected(&v), "{lookup:?}: {v:?}");
        }
        assert!(matches!(verdict("x", None), UserVerdict::Unknown(_)));
    }
}
