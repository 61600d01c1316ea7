//! The file allow-list a profile implies for `lsm/file_open`, in the form the kernel sees a
//! path (`bpf_d_path`): symlinks resolved inside the workload's root, `/proc/self` as a pid,
//! wildcards cut back to the directory above them. Exact files and directory trees, each with
//! the rights (read, write) it grants.

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
};

use sensor_common::{FILE_READ, FILE_WRITE};

/// One rule: an exact path, or everything under a directory (and the directory itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileRule {
    pub path: String,
    pub tree: bool,
    pub rights: u8,
}

/// Most symlinks followed while resolving one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// The rules for a profile's `read` and `write` lists plus the paths whose reads the probes
/// never report (so a baseline never learns them). `root` is the workload's root directory as
/// the agent sees it (`/proc/<pid>/root`); both the learned and the resolved form of each path
/// are allowed, so a symlink learned by its name still opens.
pub fn rules(
    read: &[String],
    write: &[String],
    unreported: &[String],
    root: Option<&Path>,
) -> Vec<FileRule> {
    let mut out: BTreeMap<(String, bool), u8> = BTreeMap::new();
    let mut add = |path: &str, rights: u8| {
        let (p, tree) = kernel_form(path);
        let mut forms = vec![(p.clone(), tree)];
        if let Some(root) = root
            && let Some(r) = resolve_in(root, &p)
            && r != p
        {
            forms.push((r, tree));
        }
        for f in forms {
            *out.entry(f).or_insert(0) |= rights;
        }
    };
    for p in read {
        add(p, FILE_READ);
    }
    for p in write {
        // Writers reopen what they write (O_RDWR, logs read back).
        add(p, FILE_READ | FILE_WRITE);
    }
    for p in unreported {
        add(p, FILE_READ);
    }
    out.into_iter()
        .map(|((path, tree), rights)| FileRule { path, tree, rights })
        .collect()
}

/// A learned path as the kernel can match it: `(path, tree)`.
fn kernel_form(p: &str) -> (String, bool) {
    // `bpf_d_path` names /proc/self by the pid: any of /proc then.
    if p == "/proc/self"
        || p.starts_with("/proc/self/")
        || p == "/proc/thread-self"
        || p.starts_with("/proc/thread-self/")
    {
        return ("/proc".into(), true);
    }
    let (p, tree) = match p.strip_suffix("/**") {
        Some(dir) => (dir, true),
        // An ignored prefix given as `dir/` is a tree too.
        None => match p.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (p, false),
        },
    };
    if !p.contains('*') {
        return (if p.is_empty() { "/" } else { p }.to_owned(), tree);
    }
    // The directories above the first wildcard.
    let mut dir = String::new();
    for c in p.split('/').filter(|c| !c.is_empty()) {
        if c.contains('*') {
            break;
        }
        dir.push('/');
        dir.push_str(c);
    }
    if dir.is_empty() {
        dir.push('/');
    }
    (dir, true)
}

/// `path` with every symlink in it resolved inside `root` (absolute targets start again at
/// `root`, `..` never climbs above it). Components that do not exist stay as they are. `None`
/// on a symlink loop or a target that is not UTF-8.
pub fn resolve_in(root: &Path, path: &str) -> Option<String> {
    let mut todo: VecDeque<String> = components(path).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&done);
        here.push(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&here).ok()?;
                let target = target.to_str()?;
                if target.starts_with('/') {
                    done.clear();
                }
                for (i, t) in components(target).enumerate() {
                    todo.insert(i, t);
                }
            }
            _ => done.push(c),
        }
    }
    Some(format!("/{}", done.join("/")))
}

fn components(p: &str) -> impl Iterator<Item = String> + '_ {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, tree: bool, rights: u8) -> FileRule {
        FileRule {
            path: path.into(),
            tree,
            rights,
        }
    }

    #[test]
    fn learned_paths_become_what_the_kernel_matches() {
        assert_eq!(kernel_form("/etc/passwd"), ("/etc/passwd".into(), false));
        assert_eq!(kernel_form("/srv/www/**"), ("/srv/www".into(), true));
        assert_eq!(kernel_form("/proc/*/stat"), ("/proc".into(), true));
        assert_eq!(kernel_form("/proc/self/status"), ("/proc".into(), true));
        assert_eq!(kernel_form("/tmp/tmp.*"), ("/tmp".into(), true));
        assert_eq!(kernel_form("/*"), ("/".into(), true));
        assert_eq!(
            kernel_form("/usr/lib/locale/"),
            ("/usr/lib/locale".into(), true)
        );
        assert_eq!(kernel_form("/**"), ("/".into(), true));
    }

    #[test]
    fn rights_add_up_and_writes_can_read() {
        let got = rules(
            &["/etc/app.conf".into(), "/var/log/app.log".into()],
            &["/var/log/app.log".into()],
            &["/usr/lib/locale/".into()],
            None,
        );
        assert_eq!(
            got,
            vec![
                rule("/etc/app.conf", false, FILE_READ),
                rule("/usr/lib/locale", true, FILE_READ),
                rule("/var/log/app.log", false, FILE_READ | FILE_WRITE),
            ]
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_both_forms_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/share/zoneinfo")).unwrap();
        std::fs::write(root.join("usr/share/zoneinfo/UTC"), b"").unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // Absolute: resolved from the root, not from the host's /.
        std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
        // A relative link in a directory, and `..` that would climb out of the root.
        std::os::unix::fs::symlink("usr", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../../usr/share", root.join("etc/share")).unwrap();
        // A loop.
        std::os::unix::fs::symlink("b", root.join("a")).unwrap();
        std::os::unix::fs::symlink("a", root.join("b")).unwrap();
        assert_eq!(
            resolve_in(root, "/etc/localtime").as_deref(),
            Some("/usr/share/zoneinfo/UTC")
        );
        assert_eq!(
            resolve_in(root, "/lib/share/zoneinfo/UTC").as_deref(),
            Some("/usr/share/zoneinfo/UTC")
        );
        assert_eq!(
            resolve_in(root, "/etc/share/zoneinfo").as_deref(),
            Some("/usr/share/zoneinfo")
        );
        assert_eq!(
            resolve_in(root, "/etc/not-there/x").as_deref(),
            Some("/etc/not-there/x")
        );
        assert_eq!(resolve_in(root, "/a"), None);
        let got = rules(&["/etc/localtime".into()], &[], &[], Some(root));
        assert_eq!(
            got,
            vec![
                rule("/etc/localtime", false, FILE_READ),
                rule("/usr/share/zoneinfo/UTC", false, FILE_READ),
            ]
        );
    }
}
