//! A container's name and image, from the OCI runtime's own state: runc (and containerd's
//! runc shims) keep `state.json` per container, which names the bundle; the bundle's
//! `config.json` carries the annotations orchestrators write (Kubernetes CRI, CRI-O, podman).
//!
//! Everything here is best effort and bounded: files are read only once per container (the
//! cgroup cache remembers the answer), and at most 1 MiB of each.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::ContainerRef;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerMeta {
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Annotation keys naming the image, most specific first.
const IMAGE_KEYS: &[&str] = &[
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
    "org.opencontainers.image.ref.name",
    "io.podman.annotations.image",
    "sensor.image",
];
/// Annotation keys naming the container.
const NAME_KEYS: &[&str] = &[
    "io.kubernetes.cri.container-name",
    "io.kubernetes.container.name",
    "io.kubernetes.cri-o.ContainerName",
    "io.podman.annotations.name",
    "sensor.name",
];

const MAX_FILE: u64 = 1 << 20;

#[derive(Deserialize)]
struct State {
    #[serde(default)]
    config: StateConfig,
}

#[derive(Deserialize, Default)]
struct StateConfig {
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct BundleConfig {
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Runtime state directories that hold `<id>/state.json` (containerd adds a namespace level).
fn state_files(host_root: &Path, id: &str) -> Vec<PathBuf> {
    let mut out = vec![
        host_root.join("run/runc").join(id).join("state.json"),
        host_root.join("run/crun").join(id).join("state.json"),
    ];
    if let Ok(namespaces) = std::fs::read_dir(host_root.join("run/containerd/runc")) {
        for ns in namespaces.flatten().take(64) {
            out.push(ns.path().join(id).join("state.json"));
        }
    }
    out
}

fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE), &mut buf).ok()?;
    Some(buf)
}

/// Look up name and image; `None` when the runtime left nothing readable.
pub fn lookup(host_root: &Path, container: &ContainerRef) -> Option<ContainerMeta> {
    // Ids come from cgroup paths; never let one walk out of the state directory.
    if container.id.is_empty() || container.id.contains('/') || container.id.starts_with('.') {
        return None;
    }
    let state = state_files(host_root, &container.id)
        .into_iter()
        .find_map(|p| read_bounded(&p))?;
    let state: State = serde_json::from_slice(&state).ok()?;
    let bundle = state
        .config
        .labels
        .iter()
        .find_map(|l| l.strip_prefix("bundle="))?;
    let config = read_bounded(
        &host_root
            .join(bundle.trim_start_matches('/'))
            .join("config.json"),
    )?;
    let config: BundleConfig = serde_json::from_slice(&config).ok()?;
    Some(from_annotations(&config.annotations))
}

fn from_annotations(a: &std::collections::BTreeMap<String, String>) -> ContainerMeta {
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| a.get(*k))
            .filter(|v| !v.is_empty() && v.len() <= 512)
            .cloned()
    };
    ContainerMeta {
        name: pick(NAME_KEYS),
        image: pick(IMAGE_KEYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::cgroup::Runtime;

    fn container(id: &str) -> ContainerRef {
        ContainerRef {
            runtime: Runtime::Containerd,
            id: id.into(),
            pod_uid: None,
        }
    }

    #[test]
    fn reads_cri_annotations_through_the_runc_state() {
        let root = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef";
        let state_dir = root.path().join("run/containerd/runc/k8s.io").join(id);
        std::fs::create_dir_all(&state_dir).unwrap();
        let bundle = root.path().join("bundles").join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            state_dir.join("state.json"),
            format!(r#"{{"id":"{id}","config":{{"labels":["bundle=/bundles/{id}"]}}}}"#),
        )
        .unwrap();
        std::fs::write(
            bundle.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.image-name":"docker.io/library/nginx:1.25",
                "io.kubernetes.cri.container-name":"web"}}"#,
        )
        .unwrap();
        let m = lookup(root.path(), &container(id)).unwrap();
        assert_eq!(m.image.as_deref(), Some("docker.io/library/nginx:1.25"));
        assert_eq!(m.name.as_deref(), Some("web"));
    }

    #[test]
    fn missing_garbled_or_hostile_state_gives_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(lookup(root.path(), &container("nope")), None);
        assert_eq!(lookup(root.path(), &container("../../etc")), None);
        let dir = root.path().join("run/runc/bad");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), b"\xff{not json").unwrap();
        assert_eq!(lookup(root.path(), &container("bad")), None);
    }
}
