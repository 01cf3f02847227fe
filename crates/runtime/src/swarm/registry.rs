//! The image registry the Swarm's nodes pull release images from.
//!
//! Images are built on the manager, but a task may be placed on any node,
//! and a node starts only an image its own engine holds. The platform
//! publishes each release image into a content-addressed folder (the
//! image's uncompressed layers, its config and an OCI manifest naming
//! them) and serves that folder read-only over TLS (`rampart_api::registry`)
//! at `runtime.registry`; a service names its image by that address and the
//! manifest's digest, so every node pulls exactly the bytes that were built.
//!
//! Each app's images form one repository, `rampart/<app>`. The credential
//! that pulls a repository is derived from a key the platform holds: its
//! user name is the repository and it reads that repository and no other,
//! so what one app's services carry cannot fetch another app's layers.
//! Blobs are shared on disk between repositories; a repository reads a
//! blob only when one of its own manifests names it.
//!
//! Layout under the registry folder:
//!
//! ```text
//! blobs/sha256/<hex>                     content (layers, configs, manifests)
//! repositories/<app>/manifests/<hex>     this repository's manifests (empty files)
//! repositories/<app>/blobs/<hex>         blobs its manifests name (empty files)
//! repositories/<app>/images/<image-hex>  the manifest digest published for an image
//! tmp/                                   exports and blobs being written
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::RuntimeError;
use crate::docker::{Docker, engine_error};

/// The media type of every manifest the registry serves.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Layers are served as the engine exported them: uncompressed tar, whose
/// digest is the layer's diff id.
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The prefix of every repository name.
pub const NAMESPACE: &str = "rampart";
/// What a pull credential's MAC covers before the repository.
const PULL: &[u8] = b"rampart registry pull\0";
/// What an ingress credential's MAC covers before the node id.
const SYNC: &[u8] = b"rampart ingress sync\0";
/// The user-name prefix of ingress credentials.
const INGRESS: &str = "ingress";
/// The largest `manifest.json` an export may carry.
const MAX_INDEX_BYTES: u64 = 1024 * 1024;

/// A `sha256:<64 hex>` digest, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobDigest([u8; 32]);

impl BlobDigest {
    /// Parses `sha256:<64 lowercase hex>`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("sha256:")?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// The repository an app's images are published in.
pub fn repository(app: &str) -> String {
    format!("{NAMESPACE}/{app}")
}

/// The app a repository name belongs to, when it is one of ours: the
/// namespace, then an app name (lowercase letters, digits, dashes).
pub fn app_of(repository: &str) -> Option<&str> {
    let app = repository.strip_prefix(NAMESPACE)?.strip_prefix('/')?;
    let valid = !app.is_empty()
        && app.len() <= 63
        && !app.starts_with('-')
        && app
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(app)
}

/// The registry's folder and the key its credentials derive from.
#[derive(Debug)]
pub struct Registry {
    address: String,
    dir: PathBuf,
    key: [u8; 32],
    /// One publication at a time: two replicas of a release ask for the
    /// same image, and the second finds it published.
    publishing: Mutex<()>,
}

/// A credential that pulls one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

impl Registry {
    /// A registry served at `address` (`host:port`, what nodes dial) from
    /// `dir`, with credentials derived from `key`.
    pub fn new(address: impl Into<String>, dir: impl Into<PathBuf>, key: [u8; 32]) -> Self {
        Self {
            address: address.into(),
            dir: dir.into(),
            key,
            publishing: Mutex::new(()),
        }
    }

    /// Where nodes reach the registry (`host:port`).
    pub fn address(&self) -> &str {
        &self.address
    }

    fn mac(&self, purpose: &[u8], subject: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(purpose);
        mac.update(subject.as_bytes());
        mac
    }

    /// The credential that pulls `repository`.
    pub fn credential(&self, repository: &str) -> Credential {
        Credential {
            user: repository.to_owned(),
            password: hex::encode(self.mac(PULL, repository).finalize().into_bytes()),
        }
    }

    /// The repository `user` and `password` may pull, when they are a
    /// credential this registry gave out.
    pub fn authenticate(&self, user: &str, password: &str) -> Option<String> {
        app_of(user)?;
        let given = hex::decode(password).ok()?;
        // Constant-time comparison of the MAC.
        self.mac(PULL, user).verify_slice(&given).ok()?;
        Some(user.to_owned())
    }

    /// The credential an edge on Swarm node `node` syncs with
    /// (`ingress/NODE`).
    pub fn ingress_credential(&self, node: &str) -> Credential {
        Credential {
            user: format!("{INGRESS}/{node}"),
            password: hex::encode(self.mac(SYNC, node).finalize().into_bytes()),
        }
    }

    /// The node whose ingress credential `user` and `password` are.
    pub fn authenticate_ingress(&self, user: &str, password: &str) -> Option<String> {
        let node = user.strip_prefix(INGRESS)?.strip_prefix('/')?;
        let valid = !node.is_empty()
            && node.len() <= 64
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return None;
        }
        let given = hex::decode(password).ok()?;
        self.mac(SYNC, node).verify_slice(&given).ok()?;
        Some(node.to_owned())
    }

    fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    fn repository_dir(&self, repository: &str) -> Option<PathBuf> {
        Some(self.dir.join("repositories").join(app_of(repository)?))
    }

    /// The file of manifest `digest` when `repository` holds it.
    pub fn manifest(&self, repository: &str, digest: &BlobDigest) -> Option<PathBuf> {
        self.member(repository, "manifests", digest)
    }

    /// The file of blob `digest` when one of `repository`'s manifests names it.
    pub fn blob(&self, repository: &str, digest: &BlobDigest) -> Option<PathBuf> {
        self.member(repository, "blobs", digest)
    }

    fn member(&self, repository: &str, kind: &str, digest: &BlobDigest) -> Option<PathBuf> {
        let marker = self
            .repository_dir(repository)?
            .join(kind)
            .join(digest.hex());
        if !marker.is_file() {
            return None;
        }
        let path = self.blob_path(digest);
        path.is_file().then_some(path)
    }

    /// Publishes the local image `image_id` in `repository` and returns
    /// the reference nodes pull it by (`address/repository@sha256:…`).
    /// An image published before is found without exporting it again.
    pub async fn publish(
        &self,
        docker: &Docker,
        image_id: &str,
        repository: &str,
    ) -> Result<String, RuntimeError> {
        let image = BlobDigest::parse(image_id).ok_or_else(|| {
            RuntimeError::Registry(format!("{image_id:?} is not an image id (sha256:…)"))
        })?;
        let repo_dir = self.repository_dir(repository).ok_or_else(|| {
            RuntimeError::Registry(format!(
                "{repository:?} is not a repository of this platform"
            ))
        })?;
        let _one = self.publishing.lock().await;
        if let Some(manifest) = self.published(&repo_dir, &image) {
            return Ok(self.reference(repository, &manifest));
        }
        let tmp = self.dir.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_error)?;
        let export = tmp.join(format!("export-{}.tar", image.hex()));
        let mut file = tokio::fs::File::create(&export).await.map_err(io_error)?;
        let client = docker.client().await?;
        let mut stream = client.export_image(image_id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(engine_error)?;
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        file.flush().await.map_err(io_error)?;
        drop(file);
        let dir = self.dir.clone();
        let outcome = tokio::task::spawn_blocking({
            let export = export.clone();
            move || store_export(&dir, &repo_dir, &image, &export)
        })
        .await
        .map_err(|e| RuntimeError::Registry(format!("publishing stopped: {e}")));
        let _ = fs::remove_file(&export);
        let manifest = outcome??;
        Ok(self.reference(repository, &manifest))
    }

    /// Stores the image export at `export` (the engine's `docker save`
    /// format) as image `image` of `repository` and returns its manifest's
    /// digest. What `publish` does once the engine has exported the image.
    pub fn import(
        &self,
        export: &Path,
        image: &BlobDigest,
        repository: &str,
    ) -> Result<BlobDigest, RuntimeError> {
        let repo_dir = self.repository_dir(repository).ok_or_else(|| {
            RuntimeError::Registry(format!(
                "{repository:?} is not a repository of this platform"
            ))
        })?;
        store_export(&self.dir, &repo_dir, image, export)
    }

    /// Removes `repository` and every blob no other repository names.
    pub async fn forget(&self, repository: &str) -> Result<(), RuntimeError> {
        let repo_dir = self.repository_dir(repository).ok_or_else(|| {
            RuntimeError::Registry(format!(
                "{repository:?} is not a repository of this platform"
            ))
        })?;
        // No publication between the sweep's reading and its removals.
        let _one = self.publishing.lock().await;
        match fs::remove_dir_all(&repo_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(e)),
        }
        self.sweep()
    }

    /// Removes the blobs that no repository names.
    fn sweep(&self) -> Result<(), RuntimeError> {
        let mut named = std::collections::HashSet::new();
        let repositories = match fs::read_dir(self.dir.join("repositories")) {
            Ok(dir) => dir.collect::<Result<Vec<_>, _>>().map_err(io_error)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(e)),
        };
        for repository in repositories {
            for kind in ["blobs", "manifests"] {
                let Ok(entries) = fs::read_dir(repository.path().join(kind)) else {
                    continue;
                };
                for entry in entries {
                    named.insert(entry.map_err(io_error)?.file_name());
                }
            }
        }
        let blobs = match fs::read_dir(self.dir.join("blobs").join("sha256")) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(e)),
        };
        for blob in blobs {
            let blob = blob.map_err(io_error)?;
            if !named.contains(&blob.file_name()) {
                fs::remove_file(blob.path()).map_err(io_error)?;
            }
        }
        Ok(())
    }

    fn published(&self, repo_dir: &Path, image: &BlobDigest) -> Option<BlobDigest> {
        let text = fs::read_to_string(repo_dir.join("images").join(image.hex())).ok()?;
        let manifest = BlobDigest::parse(text.trim())?;
        let complete = repo_dir.join("manifests").join(manifest.hex()).is_file()
            && self.blob_path(&manifest).is_file();
        complete.then_some(manifest)
    }

    fn reference(&self, repository: &str, manifest: &BlobDigest) -> String {
        format!("{}/{repository}@{manifest}", self.address)
    }
}

fn io_error(error: io::Error) -> RuntimeError {
    RuntimeError::Registry(error.to_string())
}

/// One entry of an export's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExportIndex {
    config: String,
    layers: Vec<String>,
}

/// Reads the image export at `export` (the engine's `docker save` format,
/// with its layers as folders or as OCI blobs), stores its config and
/// layers as blobs named by their own digests, writes the manifest, and
/// records all three as `repo_dir`'s.
fn store_export(
    dir: &Path,
    repo_dir: &Path,
    image: &BlobDigest,
    export: &Path,
) -> Result<BlobDigest, RuntimeError> {
    let bad =
        |why: String| RuntimeError::Registry(format!("the engine's export of {image}: {why}"));
    // First pass: the index, and the links the export uses for repeated layers.
    let mut index = None;
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    for entry in tar::Archive::new(fs::File::open(export).map_err(io_error)?)
        .entries()
        .map_err(io_error)?
    {
        let mut entry = entry.map_err(io_error)?;
        let path = normal(&entry.path().map_err(io_error)?)
            .ok_or_else(|| bad("an entry leaves the archive".into()))?;
        if entry.header().entry_type().is_symlink() {
            let target = entry
                .link_name()
                .map_err(io_error)?
                .ok_or_else(|| bad("a link without a target".into()))?;
            let joined = path.parent().unwrap_or(Path::new("")).join(target);
            let target = normal(&joined).ok_or_else(|| bad("a link leaves the archive".into()))?;
            links.insert(path, target);
        } else if path == Path::new("manifest.json") {
            let mut text = Vec::new();
            (&mut entry)
                .take(MAX_INDEX_BYTES)
                .read_to_end(&mut text)
                .map_err(io_error)?;
            let mut entries: Vec<ExportIndex> =
                serde_json::from_slice(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
            if entries.len() != 1 {
                return Err(bad(format!("{} images, not one", entries.len())));
            }
            index = entries.pop();
        }
    }
    let index = index.ok_or_else(|| bad("no manifest.json".into()))?;
    let resolve = |name: &str| -> Result<PathBuf, RuntimeError> {
        let mut path = normal(Path::new(name)).ok_or_else(|| bad(format!("{name:?}")))?;
        for _ in 0..8 {
            match links.get(&path) {
                Some(target) => path = target.clone(),
                None => return Ok(path),
            }
        }
        Err(bad(format!("{name:?} links in a loop")))
    };
    let config_path = resolve(&index.config)?;
    let layer_paths = index
        .layers
        .iter()
        .map(|layer| resolve(layer))
        .collect::<Result<Vec<_>, _>>()?;

    // Second pass: copy what the index names into staged files; nothing
    // becomes a blob until the whole image checks out.
    let tmp = dir.join("tmp");
    let mut staged: HashMap<PathBuf, Staged> = HashMap::new();
    for entry in tar::Archive::new(fs::File::open(export).map_err(io_error)?)
        .entries()
        .map_err(io_error)?
    {
        let mut entry = entry.map_err(io_error)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(path) = normal(&entry.path().map_err(io_error)?) else {
            continue;
        };
        if path != config_path && !layer_paths.contains(&path) {
            continue;
        }
        let blob = stage(&tmp, &mut entry)?;
        staged.insert(path, blob);
    }
    let found = |path: &PathBuf| {
        staged
            .get(path)
            .map(|blob| (blob.digest, blob.size))
            .ok_or_else(|| bad(format!("{} is named but missing", path.display())))
    };
    let (config, config_size) = found(&config_path)?;
    if config != *image {
        return Err(bad(format!(
            "its config is {config}, not the image asked for"
        )));
    }
    let layers = layer_paths
        .iter()
        .map(found)
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config.to_string(), "size": config_size },
        "layers": layers.iter().map(|(digest, size)| serde_json::json!({
            "mediaType": LAYER_TYPE, "digest": digest.to_string(), "size": size,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
    let manifest_blob = stage(&tmp, &mut bytes.as_slice())?;
    let manifest = manifest_blob.digest;
    for blob in staged.into_values().chain([manifest_blob]) {
        keep(dir, blob)?;
    }

    // Membership last: a repository names only blobs that are in place.
    for kind in ["blobs", "manifests", "images"] {
        fs::create_dir_all(repo_dir.join(kind)).map_err(io_error)?;
    }
    for (digest, _) in std::iter::once((config, config_size)).chain(layers) {
        fs::write(repo_dir.join("blobs").join(digest.hex()), b"").map_err(io_error)?;
    }
    fs::write(repo_dir.join("manifests").join(manifest.hex()), b"").map_err(io_error)?;
    let record = tmp.join(format!("image-{}", image.hex()));
    fs::write(&record, manifest.to_string()).map_err(io_error)?;
    fs::rename(&record, repo_dir.join("images").join(image.hex())).map_err(io_error)?;
    Ok(manifest)
}

/// Bytes written to a temporary file, with their digest and size.
struct Staged {
    digest: BlobDigest,
    size: u64,
    file: tempfile::NamedTempFile,
}

fn stage(tmp: &Path, from: &mut impl Read) -> Result<Staged, RuntimeError> {
    fs::create_dir_all(tmp).map_err(io_error)?;
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).map_err(io_error)?;
        size += n as u64;
    }
    file.as_file().sync_all().map_err(io_error)?;
    Ok(Staged {
        digest: BlobDigest(hasher.finalize().into()),
        size,
        file,
    })
}

/// Moves a staged file into place as the blob its digest names. A blob
/// already there is the same bytes; the copy is dropped.
fn keep(dir: &Path, blob: Staged) -> Result<(), RuntimeError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_error)?;
    let path = blobs.join(blob.digest.hex());
    if !path.is_file() {
        blob.file.persist(&path).map_err(|e| io_error(e.error))?;
    }
    Ok(())
}

/// `path` without `.` parts, or `None` when it is absolute or climbs out.
fn normal(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Item<'a> {
        File(&'a [u8]),
        Link(&'a str),
    }

    /// An export in the engine's format, entry by entry, names written
    /// as given (`..` included).
    fn export(dir: &Path, items: &[(&str, Item<'_>)]) -> PathBuf {
        let path = dir.join("export.tar");
        let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
        for (name, item) in items {
            let mut header = tar::Header::new_old();
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_mode(0o644);
            match item {
                Item::File(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_cksum();
                    builder.append(&header, *bytes).unwrap();
                }
                Item::Link(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header.set_link_name(target).unwrap();
                    header.set_cksum();
                    builder.append(&header, std::io::empty()).unwrap();
                }
            }
        }
        builder.finish().unwrap();
        path
    }

    fn digest_of(bytes: &[u8]) -> BlobDigest {
        BlobDigest(Sha256::digest(bytes).into())
    }

    const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
    const LAYER: &[u8] = b"not really a tar, but bytes all the same";

    fn index(config: &BlobDigest, layers: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([{
            "Config": format!("{}.json", config.hex()),
            "RepoTags": null,
            "Layers": layers,
        }]))
        .unwrap()
    }

    fn registry(dir: &Path) -> Registry {
        Registry::new("10.0.0.1:7444", dir.join("registry"), [7; 32])
    }

    #[test]
    fn an_export_becomes_a_manifest_naming_its_config_and_layers() {
        let dir = tempfile::tempdir().unwrap();
        let image = digest_of(CONFIG);
        let config_name = format!("{}.json", image.hex());
        // The engine writes a repeated layer as a link to the first copy.
        let path = export(
            dir.path(),
            &[
                ("a/layer.tar", Item::File(LAYER)),
                ("b/layer.tar", Item::Link("../a/layer.tar")),
                ("a/VERSION", Item::File(b"1.0")),
                (&config_name, Item::File(CONFIG)),
                (
                    "manifest.json",
                    Item::File(&index(&image, &["a/layer.tar", "b/layer.tar"])),
                ),
            ],
        );
        let registry = registry(dir.path());
        let manifest = registry.import(&path, &image, "rampart/shop").unwrap();
        let file = registry.manifest("rampart/shop", &manifest).unwrap();
        let bytes = fs::read(&file).unwrap();
        assert_eq!(
            digest_of(&bytes),
            manifest,
            "a manifest is named by its digest"
        );
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["mediaType"], MANIFEST_TYPE);
        assert_eq!(parsed["config"]["digest"], image.to_string());
        assert_eq!(parsed["config"]["size"], CONFIG.len());
        let layers = parsed["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for layer in layers {
            assert_eq!(layer["digest"], digest_of(LAYER).to_string());
            assert_eq!(layer["size"], LAYER.len());
        }
        assert_eq!(
            fs::read(registry.blob("rampart/shop", &digest_of(LAYER)).unwrap()).unwrap(),
            LAYER
        );
        assert!(registry.blob("rampart/shop", &image).is_some());
        // What the export carries besides the image is not stored.
        assert!(registry.blob("rampart/shop", &digest_of(b"1.0")).is_none());
        // Another repository reads none of it, though the blobs are shared.
        assert!(registry.manifest("rampart/other", &manifest).is_none());
        assert!(registry.blob("rampart/other", &digest_of(LAYER)).is_none());
        // Published once, found again; the same image in a second
        // repository gets the same manifest.
        assert_eq!(
            registry.published(&registry.repository_dir("rampart/shop").unwrap(), &image),
            Some(manifest)
        );
        assert_eq!(
            registry.import(&path, &image, "rampart/blog").unwrap(),
            manifest
        );
        assert!(registry.blob("rampart/blog", &digest_of(LAYER)).is_some());
        assert!(
            fs::read_dir(dir.path().join("registry/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn forgetting_a_repository_removes_the_blobs_no_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let image = digest_of(CONFIG);
        let config_name = format!("{}.json", image.hex());
        let path = export(
            dir.path(),
            &[
                ("a/layer.tar", Item::File(LAYER)),
                (&config_name, Item::File(CONFIG)),
                (
                    "manifest.json",
                    Item::File(&index(&image, &["a/layer.tar"])),
                ),
            ],
        );
        let registry = registry(dir.path());
        let manifest = registry.import(&path, &image, "rampart/shop").unwrap();
        registry.import(&path, &image, "rampart/blog").unwrap();
        let blobs = || {
            fs::read_dir(dir.path().join("registry/blobs/sha256"))
                .unwrap()
                .count()
        };
        assert_eq!(blobs(), 3, "a layer, a config, a manifest");
        registry.forget("rampart/shop").await.unwrap();
        assert!(registry.manifest("rampart/shop", &manifest).is_none());
        assert!(registry.manifest("rampart/blog", &manifest).is_some());
        assert_eq!(blobs(), 3, "what the other repository names stays");
        registry.forget("rampart/blog").await.unwrap();
        assert_eq!(blobs(), 0);
        registry.forget("rampart/blog").await.unwrap();
        assert!(registry.forget("../registry").await.is_err());
        assert!(dir.path().join("registry").is_dir());
    }

    #[test]
    fn an_ingress_credential_names_its_node_and_pulls_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let node = registry.ingress_credential("abc123");
        assert_eq!(node.user, "ingress/abc123");
        assert_eq!(
            registry
                .authenticate_ingress(&node.user, &node.password)
                .as_deref(),
            Some("abc123")
        );
        let other = registry.ingress_credential("def456");
        assert_eq!(
            registry.authenticate_ingress("ingress/abc123", &other.password),
            None
        );
        assert_eq!(
            registry.authenticate_ingress("ingress/ABC123", &node.password),
            None
        );
        assert_eq!(
            registry.authenticate_ingress("ingress/", &node.password),
            None
        );
        // Neither kind of credential passes for the other.
        let pull = registry.credential("rampart/shop");
        assert_eq!(
            registry.authenticate_ingress("ingress/shop", &pull.password),
            None
        );
        assert_eq!(
            registry.authenticate("rampart/abc123", &node.password),
            None
        );
        assert_eq!(registry.authenticate(&node.user, &node.password), None);
    }

    #[test]
    fn a_credential_reads_its_own_repository_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let shop = registry.credential("rampart/shop");
        assert_eq!(shop.user, "rampart/shop");
        assert_eq!(
            registry.authenticate(&shop.user, &shop.password).as_deref(),
            Some("rampart/shop")
        );
        assert_eq!(registry.authenticate("rampart/blog", &shop.password), None);
        let other_key = Registry::new("10.0.0.1:7444", dir.path(), [8; 32]);
        assert_eq!(other_key.authenticate(&shop.user, &shop.password), None);
        let mut flipped = shop.password.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for (user, password) in [
            ("rampart/shop", flipped.as_str()),
            ("rampart/shop", ""),
            ("rampart/shop", "not hex"),
            ("rampart/shop", &shop.password[..32]),
            ("other/shop", &registry.credential("other/shop").password),
            (
                "rampart/../shop",
                &registry.credential("rampart/../shop").password,
            ),
        ] {
            assert_eq!(
                registry.authenticate(user, password),
                None,
                "{user}:{password}"
            );
        }
    }

    #[test]
    fn a_bad_export_is_refused_and_stores_nothing() {
        let image = digest_of(CONFIG);
        let config_name = format!("{}.json", image.hex());
        let good_index = index(&image, &["a/layer.tar"]);
        let two = serde_json::to_vec(&serde_json::json!([
            {"Config": config_name, "Layers": []},
            {"Config": config_name, "Layers": []},
        ]))
        .unwrap();
        let other_config = b"{\"os\":\"plan9\"}";
        let cases: Vec<(&str, Vec<(&str, Item<'_>)>)> = vec![
            ("no index", vec![("a/layer.tar", Item::File(LAYER))]),
            (
                "a missing layer",
                vec![
                    (&config_name, Item::File(CONFIG)),
                    ("manifest.json", Item::File(&good_index)),
                ],
            ),
            (
                "a config that is another image",
                vec![
                    (&config_name, Item::File(other_config)),
                    ("a/layer.tar", Item::File(LAYER)),
                    ("manifest.json", Item::File(&good_index)),
                ],
            ),
            (
                "two images",
                vec![
                    (&config_name, Item::File(CONFIG)),
                    ("manifest.json", Item::File(&two)),
                ],
            ),
            (
                "an index that is not JSON",
                vec![("manifest.json", Item::File(b"[{\"Config\":"))],
            ),
            (
                "a link out of the archive",
                vec![
                    (&config_name, Item::File(CONFIG)),
                    ("a/layer.tar", Item::Link("../../../etc/shadow")),
                    ("manifest.json", Item::File(&good_index)),
                ],
            ),
            (
                "an entry out of the archive",
                vec![
                    (&config_name, Item::File(CONFIG)),
                    ("../a/layer.tar", Item::File(LAYER)),
                    ("manifest.json", Item::File(&good_index)),
                ],
            ),
            (
                "links in a loop",
                vec![
                    (&config_name, Item::File(CONFIG)),
                    ("a/layer.tar", Item::Link("../b/layer.tar")),
                    ("b/layer.tar", Item::Link("../a/layer.tar")),
                    ("manifest.json", Item::File(&good_index)),
                ],
            ),
        ];
        for (what, items) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = export(dir.path(), &items);
            let registry = registry(dir.path());
            let error = registry.import(&path, &image, "rampart/shop");
            assert!(error.is_err(), "{what}: accepted");
            let stored = |sub: &str| {
                fs::read_dir(dir.path().join("registry").join(sub))
                    .map(|d| d.count())
                    .unwrap_or(0)
            };
            assert_eq!(stored("blobs/sha256"), 0, "{what}: blobs written");
            assert_eq!(stored("repositories"), 0, "{what}: a repository written");
            assert_eq!(stored("tmp"), 0, "{what}: staged files left");
        }
        // Not a tar at all, and a repository that is not ours.
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, [0xffu8; 1500]).unwrap();
        let registry = registry(dir.path());
        assert!(registry.import(&garbage, &image, "rampart/shop").is_err());
        assert!(registry.import(&garbage, &image, "../shop").is_err());
        assert!(!dir.path().join("registry/repositories").exists());
    }

    #[test]
    fn digests_and_repositories_are_checked_text() {
        let hex = "ab".repeat(32);
        assert!(BlobDigest::parse(&format!("sha256:{hex}")).is_some());
        for bad in [
            hex.clone(),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha256:{}", &hex[..62]),
            format!("sha512:{hex}"),
            format!("sha256:{hex}/"),
            format!("sha256:../{}", &hex[..61]),
        ] {
            assert!(BlobDigest::parse(&bad).is_none(), "{bad}");
        }
        assert_eq!(app_of("rampart/shop"), Some("shop"));
        for bad in [
            "rampart/",
            "rampart",
            "rampart/Shop",
            "rampart/a/b",
            "rampart/..",
            "x/shop",
            "rampart/-x",
        ] {
            assert_eq!(app_of(bad), None, "{bad}");
        }
    }
}
