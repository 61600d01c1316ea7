//! Container and systemd-unit attribution from a cgroup path.
//!
//! The path is untrusted text (it comes from /proc or from an eBPF event), so
//! every function here is total: any string in, a (possibly empty) answer out.
//! The walk is allocation-free; only the returned strings are allocated.

use serde::{Deserialize, Serialize};

/// Who a process belongs to, as far as its cgroup path tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The innermost container the process runs in, if any.
    pub container: Option<ContainerRef>,
    /// The innermost systemd unit that can hold processes (service, scope,
    /// ...), if any. Set for container processes too when the runtime uses
    /// the systemd cgroup driver (e.g. `docker-<id>.scope`).
    pub systemd_unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub runtime: Runtime,
    pub id: String,
    /// Kubernetes pod UID in its canonical dashed form.
    pub pod_uid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    Runc,
    Lxc,
    /// A container whose runtime the path does not reveal, e.g. the kubelet
    /// cgroupfs layout `/kubepods/<qos>/pod<uid>/<id>` is shared by
    /// containerd and dockershim.
    Unknown,
}

/// Length of the ids docker, containerd, cri-o and podman generate.
const CONTAINER_ID_HEX_LEN: usize = 64;
/// Cgroup directory names are bounded by NAME_MAX.
const NAME_MAX: usize = 255;

/// Attributes a cgroup (v2, or v1 `name=systemd`) path to a container and/or
/// systemd unit. Pure; never panics.
pub fn attribute(cgroup_path: &str) -> Attribution {
    Attribution {
        container: find_container(cgroup_path),
        systemd_unit: innermost_unit(cgroup_path).map(str::to_owned),
    }
}

/// Returns the cgroup path from `/proc/<pid>/cgroup` contents: the unified
/// (`0::`) line if present, else the v1 `name=systemd` line (pure-v1 hosts).
pub fn parse_proc_cgroup(contents: &str) -> Option<&str> {
    let mut systemd_v1 = None;
    for line in contents.lines() {
        // The path itself may contain ':', so split at most twice.
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if hierarchy == "0" && controllers.is_empty() {
            return Some(path);
        }
        if systemd_v1.is_none() && controllers.split(',').any(|c| c == "name=systemd") {
            systemd_v1 = Some(path);
        }
    }
    systemd_v1
}

/// Attribution straight from `/proc/<pid>/cgroup` contents. Like
/// `attribute(parse_proc_cgroup(..))`, except on hybrid v1/v2 hosts: runtimes
/// using the v1 cgroupfs driver (e.g. docker with `cgroupfs`) never create
/// cgroups in the unified tree, so the `0::` path only shows the shim's
/// service. There the `name=systemd` path still carries the container.
pub fn attribute_proc_cgroup(contents: &str) -> Attribution {
    let mut attribution = parse_proc_cgroup(contents)
        .map(attribute)
        .unwrap_or_default();
    if attribution.container.is_none() {
        attribution.container = systemd_v1_path(contents).and_then(find_container);
    }
    attribution
}

fn systemd_v1_path(contents: &str) -> Option<&str> {
    contents.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == "name=systemd")
            .then_some(path)
    })
}

/// Path components from innermost to outermost, each paired with the part of
/// the path before it (its ancestors). Empty components (`//`, trailing `/`)
/// are skipped. Borrowing instead of collecting keeps `attribute` alloc-free.
struct RevComponents<'a> {
    rest: &'a str,
}

impl<'a> Iterator for RevComponents<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            // '/' is ASCII, so both slices below are on char boundaries.
            let (before, component) = match self.rest.rfind('/') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => ("", self.rest),
            };
            self.rest = before;
            if !component.is_empty() {
                return Some((component, before));
            }
        }
        None
    }
}

fn rev_components(path: &str) -> RevComponents<'_> {
    RevComponents { rest: path }
}

fn parent_component(before: &str) -> Option<&str> {
    rev_components(before).next().map(|(c, _)| c)
}

fn find_container(path: &str) -> Option<ContainerRef> {
    let single_component = rev_components(path).nth(1).is_none();
    // Innermost match wins, which handles docker-in-docker and the
    // `/init.scope` / `/container` leaf cgroups runtimes create inside.
    rev_components(path)
        .enumerate()
        .find_map(|(depth, (component, before))| {
            classify(component, before, depth == 0, single_component)
                .map(|(runtime, id)| (runtime, id, before))
        })
        .map(|(runtime, id, before)| ContainerRef {
            runtime,
            id: id.to_owned(),
            pod_uid: pod_uid(before).map(|raw| raw.replace('_', "-")),
        })
}

/// Decides whether one component denotes a container.
fn classify<'a>(
    component: &'a str,
    before: &'a str,
    innermost: bool,
    single_component: bool,
) -> Option<(Runtime, &'a str)> {
    if component.len() > NAME_MAX {
        return None;
    }
    if let Some(found) = prefixed_container(component) {
        return Some(found);
    }
    if let Some(found) = lxc_container(component, before) {
        return Some(found);
    }
    if is_container_hex(component) {
        return bare_hex_container(component, before, innermost);
    }
    if let Some(found) = containerd_namespaced(component, before) {
        return Some(found);
    }
    if single_component && is_runc_default_path(component) {
        // runc without cgroupsPath uses `/<container-id>`.
        return Some((Runtime::Runc, component));
    }
    None
}

/// `<runtime>-<64hex>[.scope]` as created by the systemd cgroup driver (and
/// by cri-o / podman under cgroupfs, without the `.scope`).
fn prefixed_container(component: &str) -> Option<(Runtime, &str)> {
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    // conmon is the runtime's monitor process; it runs outside the container.
    if stem.starts_with("crio-conmon-") || stem.starts_with("libpod-conmon-") {
        return None;
    }
    const PREFIXES: [(&str, Runtime); 5] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
        ("nerdctl-", Runtime::Containerd),
    ];
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = stem.strip_prefix(prefix)
            && is_container_hex(id)
        {
            return Some((runtime, id));
        }
    }
    // runc's systemd driver default ("system.slice:runc:<id>"); runc ids are
    // free-form, not hex.
    if let Some(id) = component
        .strip_prefix("runc-")
        .and_then(|s| s.strip_suffix(".scope"))
        && is_runc_id(id)
    {
        return Some((Runtime::Runc, id));
    }
    None
}

/// LXC >= 4 uses `lxc.payload.<name>` (and `lxc.monitor.<name>` for the
/// monitor, which is not the container); older LXC used `/lxc/<name>`.
fn lxc_container<'a>(component: &'a str, before: &str) -> Option<(Runtime, &'a str)> {
    if let Some(name) = component.strip_prefix("lxc.payload.") {
        return is_plain_name(name).then_some((Runtime::Lxc, name));
    }
    let parent = parent_component(before)?;
    if (parent == "lxc" || parent == "lxc.payload") && is_plain_name(component) {
        return Some((Runtime::Lxc, component));
    }
    None
}

/// A bare 64-hex component: the parent says who made it.
fn bare_hex_container<'a>(
    component: &'a str,
    before: &str,
    innermost: bool,
) -> Option<(Runtime, &'a str)> {
    match parent_component(before) {
        Some("docker") => return Some((Runtime::Docker, component)),
        Some("libpod_parent") => return Some((Runtime::Podman, component)),
        _ => {}
    }
    if pod_uid(before).is_some() {
        // kubelet cgroupfs layout; containerd and dockershim look identical.
        return Some((Runtime::Unknown, component));
    }
    if let Some(found) = containerd_namespaced(component, before) {
        return Some(found);
    }
    // runc with a custom cgroupsPath; only trusted as the leaf, since a hex
    // directory in the middle of a path is too weak a signal.
    innermost.then_some((Runtime::Runc, component))
}

/// containerd without kubernetes (ctr, nerdctl with cgroupfs) nests
/// containers as `<namespace>/<id>` under its own service cgroup.
fn containerd_namespaced<'a>(component: &'a str, before: &str) -> Option<(Runtime, &'a str)> {
    let mut ancestors = rev_components(before);
    let _namespace = ancestors.next()?;
    let (service, _) = ancestors.next()?;
    (service == "containerd.service" && is_runc_id(component))
        .then_some((Runtime::Containerd, component))
}

/// A lone top-level component that is not systemd's or a well-known
/// runtime/OS parent directory.
fn is_runc_default_path(component: &str) -> bool {
    // Parent directories that other runtimes/init systems create at the top.
    const RESERVED: [&str; 10] = [
        "docker",
        "kubepods",
        "libpod_parent",
        "lxc",
        "lxc.payload",
        "machine",
        "user",
        "system",
        "init",
        "podman",
    ];
    is_runc_id(component)
        && !is_systemd_unit_name(component)
        && !RESERVED.contains(&component)
        // LXC monitors and OpenRC service groups also live at the top.
        && !component.starts_with("lxc.")
        && !component.starts_with("openrc.")
}

/// Raw Kubernetes pod UID (possibly '_'-escaped) from the nearest pod
/// cgroup among `ancestors`. Borrowed so the bare-hex check does not allocate.
fn pod_uid(ancestors: &str) -> Option<&str> {
    // kubelet always names its root "kubepods" (optionally under a custom
    // --cgroup-root or as `kubelet-kubepods.slice`); requiring it avoids
    // reading random `pod...` directories as pods.
    if !ancestors.contains("kubepods") {
        return None;
    }
    rev_components(ancestors).find_map(|(component, _)| pod_uid_of(component))
}

fn pod_uid_of(component: &str) -> Option<&str> {
    let raw = match component.strip_suffix(".slice") {
        // `kubepods-<qos>-pod<uid>.slice`: systemd uses '-' as the slice
        // hierarchy separator, so kubelet escapes the uid's dashes as '_'.
        Some(stem) => stem.rsplit('-').next()?.strip_prefix("pod")?,
        None => component.strip_prefix("pod")?,
    };
    let plausible = (32..=36).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    plausible.then_some(raw)
}

/// Innermost systemd unit of a type that can contain processes. Slices are
/// skipped: they only group other units.
fn innermost_unit(path: &str) -> Option<&str> {
    rev_components(path)
        .map(|(component, _)| component)
        .find(|c| is_process_unit(c))
}

fn is_process_unit(component: &str) -> bool {
    const SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];
    SUFFIXES
        .iter()
        .any(|suffix| component.strip_suffix(suffix).is_some_and(is_unit_stem))
}

fn is_systemd_unit_name(component: &str) -> bool {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".scope",
        ".slice",
        ".socket",
        ".mount",
        ".swap",
        ".target",
        ".device",
        ".automount",
        ".path",
        ".timer",
    ];
    SUFFIXES.iter().any(|s| component.ends_with(s))
}

/// systemd unit names: `[A-Za-z0-9:_.\\@-]`, non-empty, bounded.
fn is_unit_stem(stem: &str) -> bool {
    !stem.is_empty()
        && stem.len() < NAME_MAX
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.\\@-".contains(&b))
}

fn is_container_hex(s: &str) -> bool {
    s.len() == CONTAINER_ID_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// runc's id rule: `^[\w+\-.]+$`, and not `.`/`..` (path traversal).
fn is_runc_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= NAME_MAX
        && !s.bytes().all(|b| b == b'.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
}

/// LXC container names: anything printable without a path separator.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= NAME_MAX && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "3f9a6c1e2b7d4a5f8e0c1b2a3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f506";
    const ID2: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const POD: &str = "5f2f5b4a-3c29-4c1f-9b5f-3e2e1c7d8a90";
    const POD_US: &str = "5f2f5b4a_3c29_4c1f_9b5f_3e2e1c7d8a90";

    fn container(path: &str) -> Option<(Runtime, String, Option<String>)> {
        attribute(path)
            .container
            .map(|c| (c.runtime, c.id, c.pod_uid))
    }

    fn expect(path: &str, runtime: Runtime, id: &str, pod: Option<&str>) {
        assert_eq!(
            container(path),
            Some((runtime, id.to_owned(), pod.map(str::to_owned))),
            "path: {path}"
        );
    }

    fn unit(path: &str) -> Option<String> {
        attribute(path).systemd_unit
    }

    #[test]
    fn docker_cgroupfs() {
        expect(&format!("/docker/{ID}"), Runtime::Docker, ID, None);
        assert_eq!(unit(&format!("/docker/{ID}")), None);
    }

    #[test]
    fn docker_systemd() {
        let p = format!("/system.slice/docker-{ID}.scope");
        expect(&p, Runtime::Docker, ID, None);
        assert_eq!(unit(&p), Some(format!("docker-{ID}.scope")));
    }

    #[test]
    fn kubernetes_cgroupfs_all_qos_classes() {
        for qos in ["/burstable", "/besteffort", ""] {
            let p = format!("/kubepods{qos}/pod{POD}/{ID}");
            expect(&p, Runtime::Unknown, ID, Some(POD));
        }
    }

    #[test]
    fn kubernetes_systemd_containerd_crio_docker() {
        let base = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_US}.slice"
        );
        expect(
            &format!("{base}/cri-containerd-{ID}.scope"),
            Runtime::Containerd,
            ID,
            Some(POD),
        );
        expect(
            &format!("{base}/crio-{ID}.scope"),
            Runtime::Crio,
            ID,
            Some(POD),
        );
        expect(
            &format!("{base}/docker-{ID}.scope"),
            Runtime::Docker,
            ID,
            Some(POD),
        );
        // Guaranteed pods sit directly under kubepods.slice.
        let guaranteed = format!("/kubepods.slice/kubepods-pod{POD_US}.slice/crio-{ID}.scope");
        expect(&guaranteed, Runtime::Crio, ID, Some(POD));
    }

    #[test]
    fn kind_style_kubelet_prefix() {
        let p = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
             kubelet-kubepods-besteffort-pod{POD_US}.slice/cri-containerd-{ID}.scope"
        );
        expect(&p, Runtime::Containerd, ID, Some(POD));
    }

    #[test]
    fn crio_conmon_is_not_a_container() {
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_US}.slice/crio-conmon-{ID}.scope"
        );
        let a = attribute(&p);
        assert_eq!(a.container, None);
        assert_eq!(a.systemd_unit, Some(format!("crio-conmon-{ID}.scope")));
    }

    #[test]
    fn crio_cgroupfs() {
        expect(
            &format!("/kubepods/besteffort/pod{POD}/crio-{ID}"),
            Runtime::Crio,
            ID,
            Some(POD),
        );
        assert_eq!(
            container(&format!("/kubepods/besteffort/pod{POD}/crio-conmon-{ID}")),
            None
        );
    }

    #[test]
    fn containerd_without_kubernetes() {
        expect(
            "/system.slice/containerd.service/default/redis-1",
            Runtime::Containerd,
            "redis-1",
            None,
        );
        expect(
            &format!("/system.slice/containerd.service/moby/{ID}"),
            Runtime::Containerd,
            ID,
            None,
        );
        expect(
            &format!("/system.slice/nerdctl-{ID}.scope"),
            Runtime::Containerd,
            ID,
            None,
        );
        // The daemon itself is just a service.
        let a = attribute("/system.slice/containerd.service");
        assert_eq!(a.container, None);
        assert_eq!(a.systemd_unit.as_deref(), Some("containerd.service"));
    }

    #[test]
    fn podman_variants() {
        expect(
            &format!("/libpod_parent/libpod-{ID}"),
            Runtime::Podman,
            ID,
            None,
        );
        expect(
            &format!("/machine.slice/libpod-{ID}.scope"),
            Runtime::Podman,
            ID,
            None,
        );
        let rootless = format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
        );
        expect(&rootless, Runtime::Podman, ID, None);
        assert_eq!(unit(&rootless), Some(format!("libpod-{ID}.scope")));
        assert_eq!(
            container(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn lxc() {
        expect("/lxc.payload.web01", Runtime::Lxc, "web01", None);
        expect(
            "/lxc.payload.web01/system.slice/nginx.service",
            Runtime::Lxc,
            "web01",
            None,
        );
        expect("/lxc/legacy-ct", Runtime::Lxc, "legacy-ct", None);
        assert_eq!(container("/lxc.monitor.web01"), None);
    }

    #[test]
    fn runc_default_and_custom_paths() {
        expect("/mycontainer", Runtime::Runc, "mycontainer", None);
        expect(&format!("/custom/parent/{ID}"), Runtime::Runc, ID, None);
        expect(
            "/system.slice/runc-build_42.scope",
            Runtime::Runc,
            "build_42",
            None,
        );
        // A non-hex leaf under an arbitrary parent is not a container.
        assert_eq!(container("/custom/parent/notacontainer"), None);
        // Hex in the middle is too weak a signal.
        assert_eq!(container(&format!("/custom/{ID}/leaf")), None);
    }

    #[test]
    fn top_level_system_cgroups_are_not_runc() {
        for p in [
            "/init.scope",
            "/user.slice",
            "/system.slice",
            "/docker",
            "/kubepods",
            "/machine.slice",
            "/lxc.monitor.x",
            "/openrc.sshd",
            "/..",
            "/.",
        ] {
            assert_eq!(container(p), None, "path: {p}");
        }
    }

    #[test]
    fn nested_paths_take_innermost_container() {
        expect(
            &format!("/docker/{ID}/docker/{ID2}"),
            Runtime::Docker,
            ID2,
            None,
        );
        expect(
            &format!("/system.slice/docker-{ID}.scope/init.scope"),
            Runtime::Docker,
            ID,
            None,
        );
        expect(
            &format!("/kubepods/burstable/pod{POD}/{ID}/docker/{ID2}"),
            Runtime::Docker,
            ID2,
            Some(POD),
        );
        expect(
            &format!("/system.slice/docker-{ID}.scope/system.slice/docker-{ID2}.scope"),
            Runtime::Docker,
            ID2,
            None,
        );
    }

    #[test]
    fn host_systemd_units() {
        let cases = [
            ("/system.slice/nginx.service", Some("nginx.service")),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
                Some("foo.service"),
            ),
            ("/init.scope", Some("init.scope")),
            (
                "/system.slice/system-getty.slice/getty@tty1.service",
                Some("getty@tty1.service"),
            ),
            ("/user.slice", None),
            ("/", None),
        ];
        for (path, want) in cases {
            let a = attribute(path);
            assert_eq!(a.systemd_unit.as_deref(), want, "path: {path}");
            assert_eq!(a.container, None, "path: {path}");
        }
    }

    #[test]
    fn garbage_is_harmless() {
        for p in [
            "",
            "/",
            "//",
            "///docker//",
            ".service",
            "/\u{0}/\u{202e}ünï/",
            "pod",
        ] {
            let _ = attribute(p);
        }
        let junk = "ÿ/.scope-crio-".repeat(1024);
        let _ = attribute(&junk);
        // Not 64 hex: too short / non-hex.
        assert_eq!(container("/docker/abc"), None);
        assert_eq!(container(&format!("/docker/{}", "g".repeat(64))), None);
        // Uppercase or multibyte-adjacent ids never split a char.
        assert_eq!(container(&format!("/docker/é{}", &ID[1..])), None);
    }

    #[test]
    fn pod_uid_requires_kubepods_ancestor() {
        assert_eq!(
            container(&format!("/other/pod{POD}/crio-{ID}")),
            Some((Runtime::Crio, ID.to_owned(), None))
        );
    }

    #[test]
    fn parse_proc_cgroup_variants() {
        let v2 = "0::/system.slice/nginx.service\n";
        assert_eq!(parse_proc_cgroup(v2), Some("/system.slice/nginx.service"));

        let hybrid = "12:cpuset:/\n11:memory:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            parse_proc_cgroup(hybrid),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );

        let v1 = format!("4:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        assert_eq!(
            parse_proc_cgroup(&v1),
            Some(format!("/docker/{ID}").as_str())
        );

        // Colons inside the path survive.
        assert_eq!(parse_proc_cgroup("0::/a:b:c"), Some("/a:b:c"));
        assert_eq!(parse_proc_cgroup(""), None);
        assert_eq!(parse_proc_cgroup("garbage\n3:cpu\n"), None);
    }

    #[test]
    fn hybrid_host_falls_back_to_v1_for_the_container() {
        let contents = format!(
            "12:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n"
        );
        let a = attribute_proc_cgroup(&contents);
        assert_eq!(
            a.container.map(|c| (c.runtime, c.id)),
            Some((Runtime::Docker, ID.to_owned()))
        );
        assert_eq!(a.systemd_unit.as_deref(), Some("containerd.service"));

        let plain = "0::/system.slice/nginx.service\n";
        assert_eq!(
            attribute_proc_cgroup(plain),
            attribute("/system.slice/nginx.service")
        );
        assert_eq!(attribute_proc_cgroup(""), Attribution::default());
    }

    proptest! {
        #[test]
        fn attribute_never_panics(s in any::<String>()) {
            let _ = attribute(&s);
            let _ = parse_proc_cgroup(&s);
            let _ = attribute_proc_cgroup(&s);
        }

        // Arbitrary strings rarely reach the deeper rules; this alphabet does.
        #[test]
        fn attribute_never_panics_on_pathlike(
            parts in proptest::collection::vec(
                "(/|docker|docker-|crio-|crio-conmon-|libpod-|cri-containerd-|kubepods|\\.slice|\\.scope|pod|_|-|lxc\\.payload\\.|containerd\\.service|[0-9a-f]{64}|[0-9a-f]{1,8}|é)",
                0..40,
            )
        ) {
            let s: String = parts.concat();
            let a = attribute(&s);
            if let Some(c) = a.container {
                prop_assert!(!c.id.is_empty());
                prop_assert!(s.contains(&c.id));
            }
        }
    }
}
