//! Operator semantics on events: strings, numbers, booleans, multi-valued and missing
//! fields, CIDR, glob, regex, pmatch, output rendering.

use super::super::compile::glob_to_regex;
use super::{ev, fires, load};
use crate::rules::Scratch;

const BASH: &str = "{evt.type: exec, proc.exe: /usr/bin/bash, proc.args: [-i, '-c', 'echo HI'], proc.pname: sshd, proc.ancestors: [systemd], proc.aexe: [/sbin/init], proc.cwd: /home/u, user.uid: 1000}";

#[test]
fn string_operators() {
    assert!(fires("proc.name = bash", BASH));
    assert!(!fires("proc.name = zsh", BASH));
    assert!(fires("proc.name != zsh", BASH));
    assert!(fires("proc.exe contains bin/ba", BASH));
    assert!(fires("proc.exe icontains BIN/BASH", BASH));
    assert!(fires("proc.exe startswith /usr/", BASH));
    assert!(fires("proc.exe endswith /bash", BASH));
    assert!(fires("proc.name in (sh, bash)", BASH));
    assert!(!fires("proc.name in (sh, zsh)", BASH));
    assert!(fires(r"proc.exe regex '^/usr/bin/[a-z]+$'", BASH));
    assert!(fires("evt.kind = exec and evt.outcome = ''", BASH));
}

#[test]
fn numeric_and_boolean_operators() {
    assert!(fires("user.uid = 1000", BASH));
    assert!(fires("user.uid >= 1000 and user.uid <= 1000", BASH));
    assert!(fires("user.uid > 999 and user.uid < 1001", BASH));
    assert!(fires("user.uid in (0, 1000)", BASH));
    assert!(fires("user.uid != 0", BASH));
    assert!(fires("user.uid = 0x3e8", BASH));
    assert!(fires("proc.args_count = 4", BASH));
    let memfd = "{evt.type: exec, proc.exe_memfd: true}";
    assert!(fires("proc.exe_memfd = true", memfd));
    assert!(!fires("proc.exe_memfd = false", memfd));
    assert!(fires("proc.exe_memfd != false", memfd));
    let f = "{evt.type: openat, file.path: /x, file.flags: [O_RDWR, O_CREAT], file.mode: '4755'}";
    assert!(fires("file.write = true", f));
    assert!(fires("file.mode = 4755 and file.mode_bits >= 4000", f));
    assert!(!fires("file.mode_bits < 4000", f));
    assert!(fires(
        "file.write = false",
        "{evt.type: openat, file.flags: [O_RDONLY]}"
    ));
}

#[test]
fn syscall_fields() {
    let e = "{evt.type: setuid, evt.ret: -1, syscall.arg.uid: 0, syscall.str: [a, b]}";
    assert!(fires("evt.ret < 0 and syscall.arg.uid = 0", e));
    assert!(fires("syscall.str = b", e));
    assert!(!fires("syscall.arg.gid exists", e));
    assert!(fires("evt.kind = privilege", e));
}

#[test]
fn multi_valued_any_and_not_equal_means_none() {
    assert!(fires("proc.args = -i", BASH));
    assert!(fires("proc.args = 'echo HI'", BASH));
    assert!(!fires("proc.args = bash", BASH), "args exclude argv0");
    assert!(fires("proc.argv0 = bash", BASH));
    assert!(fires("proc.args contains HI", BASH));
    assert!(fires("proc.args startswith -c", BASH));
    assert!(fires("proc.args in (-x, -i)", BASH));
    assert!(!fires("proc.args != -i", BASH), "one element equals");
    assert!(fires("proc.args != -z", BASH), "none equals");
    assert!(
        fires("proc.ancestors = sshd and proc.ancestors = init", BASH),
        "exe basename wins over name"
    );
    assert!(fires("proc.aexe = /sbin/init", BASH));
    assert!(fires("proc.cmdline = 'bash -i -c echo HI'", BASH));
}

#[test]
fn missing_fields_are_false_except_negations() {
    let e = "{evt.type: exec, proc.exe: /bin/x}";
    for cond in [
        "container.id = abc",
        "container.id in (abc)",
        "container.id contains a",
        "container.id glob '*'",
        "container.id regex '.*'",
        "container.id exists",
        "net.dport > 0",
        "net.dport < 100000",
        "net.dip in (0.0.0.0/0)",
        "proc.args = x",
        "proc.exe_memfd = false",
        "file.write = false",
        "net.dip_private = false",
    ] {
        assert!(!fires(cond, e), "{cond}");
    }
    for cond in [
        "container.id != abc",
        "not container.id exists",
        "not container.id = abc",
        "net.dport != 5",
        "proc.args != x",
        "proc.exe_memfd != true",
    ] {
        assert!(fires(cond, e), "{cond}");
    }
}

#[test]
fn cidr_matching() {
    let e = |ip: &str| format!("{{evt.type: connect, net.dip: '{ip}', net.dport: 443}}");
    assert!(fires(
        "net.dip in (10.0.0.0/8, 192.168.1.1)",
        &e("10.2.3.4")
    ));
    assert!(fires(
        "net.dip in (10.0.0.0/8, 192.168.1.1)",
        &e("192.168.1.1")
    ));
    assert!(!fires(
        "net.dip in (10.0.0.0/8, 192.168.1.1)",
        &e("192.168.1.2")
    ));
    assert!(fires("net.dip = 10.0.0.0/8", &e("::ffff:10.9.9.9")));
    assert!(fires("net.dip in (fd00::/8)", &e("fd12::1")));
    assert!(!fires("net.dip in (fd00::/8)", &e("10.0.0.1")));
    assert!(fires("net.dip != 10.0.0.0/8", &e("8.8.8.8")));
    assert!(fires("net.dip in (0.0.0.0/0)", &e("8.8.8.8")));
    assert!(fires("net.dip startswith 8.8.", &e("8.8.8.8")));
    for private in [
        "10.1.1.1",
        "172.16.0.1",
        "192.168.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fd00::1",
    ] {
        assert!(fires("net.dip_private = true", &e(private)), "{private}");
    }
    for public in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
        assert!(fires("net.dip_private = false", &e(public)), "{public}");
    }
}

#[test]
fn glob_semantics() {
    let m = |g: &str, s: &str| {
        regex::Regex::new(&glob_to_regex(g).unwrap())
            .unwrap()
            .is_match(s)
    };
    assert!(m("/tmp/*.sh", "/tmp/a.sh"));
    assert!(!m("/tmp/*.sh", "/tmp/x/a.sh"), "* stays in one component");
    assert!(m("/tmp/**.sh", "/tmp/x/a.sh"));
    assert!(m("/home/**/.ssh/*", "/home/u/.ssh/id_rsa"));
    assert!(
        m("/home/**/.ssh/*", "/home/.ssh/id_rsa"),
        "**/ matches zero dirs"
    );
    assert!(m("/a/**", "/a/b/c/d"));
    assert!(m("/dev/tty?", "/dev/tty1"));
    assert!(!m("/dev/tty?", "/dev/tty12"));
    assert!(m("/x/[abc].txt", "/x/b.txt"));
    assert!(!m("/x/[!abc].txt", "/x/b.txt"));
    assert!(m("/x/[!abc].txt", "/x/d.txt"));
    assert!(m("/x/[]]", "/x/]"));
    assert!(m("a.b+c(d)", "a.b+c(d)"), "regex metachars are literal");
    assert!(glob_to_regex("/x/[ab").is_err());
    assert!(fires(
        "file.path glob '/etc/**/*.conf'",
        "{evt.type: openat, file.path: /etc/a/b/c.conf}"
    ));
}

#[test]
fn pmatch_is_path_prefix() {
    let e = |p: &str| format!("{{evt.type: openat, file.path: '{p}'}}");
    let c = "file.path pmatch (/etc, /usr/lib/)";
    assert!(fires(c, &e("/etc")));
    assert!(fires(c, &e("/etc/passwd")));
    assert!(fires(c, &e("/usr/lib/x.so")));
    assert!(!fires(c, &e("/etcetera")));
    assert!(!fires(c, &e("/usr/libexec")));
}

#[test]
fn regex_is_unanchored_search() {
    assert!(fires("proc.cmdline regex 'echo\\s+HI'", BASH));
    assert!(!fires("proc.cmdline regex '^echo'", BASH));
}

#[test]
fn output_renders_fields() {
    let set = load(
        "- rule:\n    id: O-1\n    name: o\n    severity: info\n    condition: evt.type = exec\n    output: 'Shell %proc.cmdline from %proc.pname (uid=%user.uid, ct=%container.id, 100%%, args=%proc.args). %proc.exe_memfd'\n",
    );
    let mut out = Vec::new();
    set.evaluate(&mut Scratch::new(), &ev(BASH), &mut out);
    assert_eq!(
        out[0].message,
        "Shell bash -i -c echo HI from sshd (uid=1000, ct=<NA>, 100%, args=-i -c echo HI). <NA>"
    );
    assert_eq!(out[0].rule.id, "O-1");
}
