//! The argv walk: secrets that only context reveals.
//!
//! `-p` is a password for `mysql` (attached only: `mysql -p db` prompts and `db` is the
//! database), for `sshpass` and `docker login`, and a port, a flag or a mode for `ssh`,
//! `docker run`, `tar`, `cp`, `mkdir` and `grep -P`. So short flags only mean something
//! under a program that is known to take a secret there; long flags (`--password`,
//! `--api-token`) are judged by their name under any program. A program is recognised at
//! any token, not just argv[0], so `sudo -u db mysql -pX`, `docker exec c mysql -pX` and
//! `kubectl exec p -- mysql -pX` are covered without parsing every wrapper. An argument
//! with whitespace in it (`sh -c "..."`, `su -c`, `ssh host "..."`, `watch "..."`) is split
//! like a shell would and walked as nested command lines.

use super::patterns::{NameClass, classify_name, is_crypt_hash, is_path_like, is_placeholder};
use super::{Classification, Hit};

use Classification::{Confidential, Restricted};

/// A word: a byte range of one argument. Ranges start and end next to ASCII delimiters or
/// at the argument's ends, so they are always char boundaries.
#[derive(Debug, Clone, Copy)]
struct Tok {
    arg: usize,
    start: usize,
    end: usize,
}

/// How deep `sh -c "ssh h 'sh -c \"…\"'"` nesting is followed. Each level strips one layer
/// of quoting; beyond three the command is obfuscated anyway and the token regexes still see
/// every byte.
const MAX_DEPTH: u8 = 3;

pub(super) fn scan(args: &[String], hits: &mut Vec<Hit>) {
    let toks: Vec<Tok> = args
        .iter()
        .enumerate()
        .map(|(arg, a)| Tok {
            arg,
            start: 0,
            end: a.len(),
        })
        .collect();
    Walk { args, hits }.segment(&toks, 0);
}

/// What a flag's value is.
#[derive(Debug, Clone, Copy)]
enum Val {
    /// The whole value is the secret.
    Secret,
    /// `user<sep>password`: the part after the first separator (none: the tool prompts).
    UserPass(u8),
    /// Only values with this prefix are literal secrets (`openssl -passin pass:X`; `env:`,
    /// `file:` and `fd:` name where the secret is).
    Prefix(&'static str),
    /// `useradd -p`: a crypt hash (confidential), or a plaintext password someone passed
    /// where a hash belongs (restricted).
    HashOrPlain,
    /// An NT hash for pass-the-hash: as good as the password.
    NtHash,
    /// A switch that takes no value here (`psql --password` forces a prompt): recognised
    /// so the generic long-flag rule does not take the next word.
    None,
}

struct Flag {
    name: &'static str,
    /// `-pX`, `--password=X`, `/p:X`.
    attached: bool,
    /// `-p X`.
    separate: bool,
    val: Val,
}

const fn f(name: &'static str, attached: bool, separate: bool, val: Val) -> Flag {
    Flag {
        name,
        attached,
        separate,
        val,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prog {
    Mysql,
    Psql,
    Sshpass,
    Useradd,
    Curl,
    Redis,
    Mongo,
    /// docker/podman/helm/skopeo…: flags count only after a `login` word.
    Registry,
    Ldap,
    Sqlcmd,
    Smb,
    Sqlplus,
    Htpasswd,
    Openssl,
    Keytool,
    Freerdp,
    Rdesktop,
    Zip,
    SevenZip,
    Aws,
    Impacket,
    /// Password sprayers and lateral-movement tools: `-p PASS`, `-H NTHASH`.
    Spray,
    Az,
    SshKeygen,
    /// Known programs whose short flags are not secrets (`ssh -p 22`): seeing one ends the
    /// previous program's rules (`sshpass -p X ssh -p 22 host`).
    Neutral,
}

fn program(word: &str) -> Option<Prog> {
    let base = word.rsplit('/').next().unwrap_or(word);
    Some(match base {
        "mysql" | "mariadb" | "mysqldump" | "mariadb-dump" | "mysqladmin" | "mysqlimport"
        | "mysqlshow" | "mysqlcheck" | "mysqlpump" | "mysqlslap" | "mysqlbinlog" => Prog::Mysql,
        "psql" | "pg_dump" | "pg_dumpall" | "pg_restore" | "createdb" | "dropdb" | "createuser"
        | "dropuser" | "pg_basebackup" | "vacuumdb" | "reindexdb" => Prog::Psql,
        "sshpass" => Prog::Sshpass,
        "useradd" | "usermod" => Prog::Useradd,
        "curl" => Prog::Curl,
        "redis-cli" => Prog::Redis,
        "mongo" | "mongosh" | "mongodump" | "mongorestore" | "mongoexport" | "mongoimport" => {
            Prog::Mongo
        }
        "docker" | "podman" | "nerdctl" | "buildah" | "skopeo" | "helm" | "oras" | "crane" => {
            Prog::Registry
        }
        "ldapsearch" | "ldapadd" | "ldapmodify" | "ldapdelete" | "ldapwhoami" | "ldappasswd"
        | "ldapmodrdn" | "ldapcompare" => Prog::Ldap,
        "sqlcmd" | "bcp" | "osql" => Prog::Sqlcmd,
        "smbclient" | "rpcclient" | "smbmap" | "smbcacls" | "net" => Prog::Smb,
        "sqlplus" | "rman" | "expdp" | "impdp" | "exp" | "imp" | "sqlldr" => Prog::Sqlplus,
        "htpasswd" => Prog::Htpasswd,
        "openssl" => Prog::Openssl,
        "keytool" => Prog::Keytool,
        "xfreerdp" | "xfreerdp3" | "wlfreerdp" | "sdl-freerdp" | "sdl-freerdp3" => Prog::Freerdp,
        "rdesktop" => Prog::Rdesktop,
        "zip" | "unzip" | "zipcloak" => Prog::Zip,
        "7z" | "7za" | "7zr" | "rar" | "unrar" => Prog::SevenZip,
        "aws" => Prog::Aws,
        "hydra" | "medusa" | "ncrack" | "crackmapexec" | "cme" | "netexec" | "nxc"
        | "evil-winrm" | "kerbrute" => Prog::Spray,
        "az" => Prog::Az,
        "ssh-keygen" => Prog::SshKeygen,
        "ssh" | "scp" | "sftp" | "rsync" | "kubectl" | "oc" | "git" | "sudo" | "doas" | "env"
        | "nohup" | "timeout" | "tar" | "cp" | "mv" | "mkdir" | "grep" | "egrep" | "ls" | "cat"
        | "echo" | "printf" | "sh" | "bash" | "dash" | "zsh" | "ksh" | "su" | "runuser"
        | "xargs" | "watch" | "nc" | "ncat" | "socat" | "python" | "python3" | "perl" | "ruby"
        | "node" | "java" | "systemctl" => Prog::Neutral,
        _ if base.starts_with("impacket-")
            || (base.ends_with(".py")
                && [
                    "psexec",
                    "wmiexec",
                    "smbexec",
                    "atexec",
                    "dcomexec",
                    "secretsdump",
                    "getTGT",
                    "getST",
                    "GetUserSPNs",
                    "GetNPUsers",
                    "mssqlclient",
                    "smbclient",
                    "lookupsid",
                    "reg",
                    "services",
                ]
                .iter()
                .any(|n| base.strip_suffix(".py") == Some(n))) =>
        {
            Prog::Impacket
        }
        _ => return None,
    })
}

fn flags(p: Prog) -> &'static [Flag] {
    use Val::*;
    match p {
        // `-p db` prompts and `db` is the database; `--password db` likewise.
        Prog::Mysql => {
            const {
                &[
                    f("-p", true, false, Secret),
                    f("--password", true, false, Secret),
                ]
            }
        }
        Prog::Psql => {
            const {
                &[
                    f("--password", false, false, None),
                    f("-W", false, false, None),
                ]
            }
        }
        Prog::Sshpass => const { &[f("-p", true, true, Secret)] },
        Prog::Useradd => {
            const {
                &[
                    f("-p", true, true, HashOrPlain),
                    f("--password", true, true, HashOrPlain),
                ]
            }
        }
        Prog::Curl => {
            const {
                &[
                    f("-u", true, true, UserPass(b':')),
                    f("--user", true, true, UserPass(b':')),
                    f("-U", true, true, UserPass(b':')),
                    f("--proxy-user", true, true, UserPass(b':')),
                    f("--oauth2-bearer", true, true, Secret),
                ]
            }
        }
        Prog::Redis => {
            const {
                &[
                    f("-a", false, true, Secret),
                    f("--pass", true, true, Secret),
                ]
            }
        }
        Prog::Mongo => {
            const {
                &[
                    f("-p", false, true, Secret),
                    f("--password", true, true, Secret),
                ]
            }
        }
        Prog::Registry => {
            const {
                &[
                    f("-p", true, true, Secret),
                    f("--password", true, true, Secret),
                ]
            }
        }
        Prog::Ldap => const { &[f("-w", true, true, Secret)] },
        Prog::Sqlcmd => const { &[f("-P", true, true, Secret)] },
        Prog::Smb => {
            const {
                &[
                    f("-U", true, true, UserPass(b'%')),
                    f("--user", true, true, UserPass(b'%')),
                ]
            }
        }
        Prog::Openssl => {
            const {
                &[
                    f("-passin", false, true, Prefix("pass:")),
                    f("-passout", false, true, Prefix("pass:")),
                    f("-pass", false, true, Prefix("pass:")),
                    f("-k", false, true, Secret),
                    f("-K", false, true, Secret),
                ]
            }
        }
        Prog::Keytool => {
            const {
                &[
                    f("-storepass", false, true, Secret),
                    f("-keypass", false, true, Secret),
                    f("-srcstorepass", false, true, Secret),
                    f("-deststorepass", false, true, Secret),
                    f("-srckeypass", false, true, Secret),
                    f("-destkeypass", false, true, Secret),
                    f("-new", false, true, Secret),
                ]
            }
        }
        Prog::Freerdp => {
            const {
                &[
                    f("/p:", true, false, Secret),
                    f("/password:", true, false, Secret),
                    f("/pth:", true, false, NtHash),
                ]
            }
        }
        Prog::Rdesktop => const { &[f("-p", true, true, Secret)] },
        Prog::Zip => {
            const {
                &[
                    f("-P", true, true, Secret),
                    f("--password", true, true, Secret),
                ]
            }
        }
        Prog::SevenZip => const { &[f("-p", true, false, Secret)] },
        Prog::Impacket => const { &[f("-hashes", false, true, NtHash)] },
        Prog::Spray => {
            const {
                &[
                    f("-p", false, true, Secret),
                    f("--password", true, true, Secret),
                    f("-H", false, true, NtHash),
                ]
            }
        }
        Prog::Az => const { &[f("-p", true, true, Secret)] },
        // New and old passphrase; `-N ''` (no passphrase) is empty and not reported.
        Prog::SshKeygen => const { &[f("-N", true, true, Secret), f("-P", true, true, Secret)] },
        Prog::Sqlplus | Prog::Htpasswd | Prog::Aws | Prog::Neutral => &[],
    }
}

/// `id=npmrc,src=/x` (`docker build --secret`), `name=value`: a spec that says where a
/// secret is. A secret *in* one (`password=x`) is the assignment detector's to find.
fn is_spec(v: &str) -> bool {
    v.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    })
}

/// Per-program state within one simple command.
struct Cmd {
    prog: Option<Prog>,
    /// Positional words after the program, for `aws configure set K V`, `htpasswd -b`.
    positionals: Vec<Tok>,
    login: bool,
    batch: bool,
}

impl Cmd {
    fn new(prog: Option<Prog>) -> Cmd {
        Cmd {
            prog,
            positionals: Vec::new(),
            login: false,
            batch: false,
        }
    }
}

struct Walk<'a> {
    args: &'a [String],
    hits: &'a mut Vec<Hit>,
}

impl<'a> Walk<'a> {
    fn text(&self, t: Tok) -> &'a str {
        let args: &'a [String] = self.args;
        args.get(t.arg)
            .and_then(|a| a.get(t.start..t.end))
            .unwrap_or("")
    }

    /// Strip one pair of matching outer quotes.
    fn unquote(&self, t: Tok) -> Tok {
        let s = self.text(t).as_bytes();
        if s.len() >= 2 && matches!(s[0], b'"' | b'\'') && s[s.len() - 1] == s[0] {
            Tok {
                start: t.start + 1,
                end: t.end - 1,
                ..t
            }
        } else {
            t
        }
    }

    fn after(&self, t: Tok, n: usize) -> Tok {
        Tok {
            start: (t.start + n).min(t.end),
            ..t
        }
    }

    fn hit(&mut self, t: Tok, kind: &'static str, class: Classification, confidence: f32) {
        let t = self.unquote(t);
        if t.start < t.end && !is_placeholder(self.text(t)) {
            self.hits.push(Hit {
                field: t.arg,
                start: t.start,
                end: t.end,
                kind,
                class,
                confidence,
                spec: 2,
            });
        }
    }

    /// One simple command (an argv, or one `;`/`|`/`&&` piece of a script).
    fn segment(&mut self, toks: &[Tok], depth: u8) {
        let mut cmd = Cmd::new(None);
        let mut i = 0;
        while i < toks.len() {
            let tok = self.unquote(toks[i]);
            let word = self.text(tok);
            // The program's own flags first: `mysql "-pa b"` is a password with a space,
            // not a script.
            if let Some(p) = cmd.prog
                && let Some(n) = self.program_flag(p, &cmd, toks, i)
            {
                i += n;
                continue;
            }
            // A script: any argv word with whitespace (no shell split it), or inside a
            // script a fully quoted word (`sh -c 'ssh h "mysql -pX"'`). A partly quoted one
            // (`PASSWORD='a b'`) is a single word with a quoted value.
            let script = if depth == 0 {
                word.bytes().any(|b| b.is_ascii_whitespace())
            } else {
                tok.start != toks[i].start && word.bytes().any(|b| b.is_ascii_whitespace())
            };
            if script && depth < MAX_DEPTH {
                for seg in self.shell_words(tok) {
                    self.segment(&seg, depth + 1);
                }
                i += 1;
                continue;
            }
            if !word.starts_with('-')
                && let Some(p) = program(word)
            {
                self.finish(&cmd);
                cmd = Cmd::new(Some(p));
                i += 1;
                continue;
            }
            if let Some(opts) = word.strip_prefix('-') {
                if cmd.prog == Some(Prog::Htpasswd) && !opts.starts_with('-') && opts.contains('b')
                {
                    cmd.batch = true;
                }
                i += self.long_flag(toks, i);
                continue;
            }
            self.positional(&mut cmd, tok);
            i += 1;
        }
        self.finish(&cmd);
    }

    /// A flag from the current program's table at `toks[i]`: how many tokens it used.
    fn program_flag(&mut self, p: Prog, cmd: &Cmd, toks: &[Tok], i: usize) -> Option<usize> {
        if p == Prog::Registry && !cmd.login {
            return None;
        }
        let tok = self.unquote(toks[i]);
        let word = self.text(tok);
        for fl in flags(p) {
            if word == fl.name {
                if !fl.separate {
                    return Some(1);
                }
                let Some(&next) = toks.get(i + 1) else {
                    return Some(1);
                };
                let next = self.unquote(next);
                let v = self.text(next);
                // `mongo -p -h host` prompts; a following option is not the value.
                if v.is_empty() || (v.starts_with('-') && v.len() > 1) {
                    return Some(1);
                }
                self.value(fl.val, next);
                return Some(2);
            }
            if fl.attached
                && word.len() > fl.name.len()
                && word.starts_with(fl.name)
                && (!fl.name.starts_with("--") || word.as_bytes()[fl.name.len()] == b'=')
            {
                let skip = fl.name.len() + usize::from(fl.name.starts_with("--"));
                self.value(fl.val, self.after(tok, skip));
                return Some(1);
            }
        }
        None
    }

    /// Report a flag's value according to what it is.
    fn value(&mut self, val: Val, t: Tok) {
        let t = self.unquote(t);
        let v = self.text(t);
        match val {
            Val::Secret => self.hit(t, "password_flag", Restricted, 0.9),
            Val::UserPass(sep) => {
                if let Some(n) = v.bytes().position(|b| b == sep) {
                    self.hit(self.after(t, n + 1), "password_flag", Restricted, 0.9);
                }
            }
            Val::Prefix(prefix) => {
                if v.starts_with(prefix) {
                    self.hit(
                        self.after(t, prefix.len()),
                        "password_flag",
                        Restricted,
                        0.9,
                    );
                }
            }
            Val::HashOrPlain => {
                if is_crypt_hash(v) {
                    self.hit(t, "password_hash", Confidential, 0.9);
                } else {
                    self.hit(t, "password_flag", Restricted, 0.8);
                }
            }
            Val::NtHash => self.hit(t, "password_hash", Restricted, 0.9),
            Val::None => {}
        }
    }

    /// `--password X`, `--api-token=X`, Go-style `-token X`: judged by the flag's name under
    /// any program. Returns how many tokens were used.
    fn long_flag(&mut self, toks: &[Tok], i: usize) -> usize {
        let tok = self.unquote(toks[i]);
        let word = self.text(tok);
        let dashes = if word.starts_with("--") { 2 } else { 1 };
        // Single-dash words are option clusters (`-xvzf`) unless long enough to be a Go-style
        // flag; classify_name needs a whole keyword word anyway.
        if word.len() <= dashes || (dashes == 1 && word.len() < 5) {
            return 1;
        }
        let body = &word[dashes..];
        let (name, attached) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let class = classify_name(name);
        if !matches!(class, NameClass::Password | NameClass::Secret) {
            return 1;
        }
        if attached {
            let v = self.after(tok, dashes + name.len() + 1);
            if !(class == NameClass::Secret && is_path_like(self.text(self.unquote(v)))) {
                self.hit(v, "password_flag", Restricted, 0.9);
            }
            return 1;
        }
        let Some(&next) = toks.get(i + 1) else {
            return 1;
        };
        let next = self.unquote(next);
        let v = self.text(next);
        // A following option means this one is a switch; a path is a key *file*
        // (`--auth-user-pass /etc/openvpn/creds`).
        if v.is_empty() || v.starts_with('-') || is_path_like(v) || is_spec(v) {
            return 1;
        }
        self.hit(next, "password_flag", Restricted, 0.85);
        2
    }

    fn positional(&mut self, cmd: &mut Cmd, tok: Tok) {
        let word = self.text(tok);
        match cmd.prog {
            Some(Prog::Registry) if word == "login" => cmd.login = true,
            // `sqlplus user/pass@db`; `sqlplus / as sysdba` has no password.
            Some(Prog::Sqlplus) if cmd.positionals.is_empty() => {
                if let Some(slash) = word.find('/')
                    && slash > 0
                {
                    let end = word.rfind('@').filter(|&a| a > slash).unwrap_or(word.len());
                    let pass = Tok {
                        start: tok.start + slash + 1,
                        end: tok.start + end,
                        ..tok
                    };
                    self.hit(pass, "password_flag", Restricted, 0.85);
                }
            }
            // `[domain/]user[:password]@target`.
            Some(Prog::Impacket) => {
                if let Some(at) = word.rfind('@')
                    && let Some(colon) = word[..at].find(':')
                {
                    let pass = Tok {
                        start: tok.start + colon + 1,
                        end: tok.start + at,
                        ..tok
                    };
                    self.hit(pass, "password_flag", Restricted, 0.9);
                }
            }
            // `aws configure set aws_secret_access_key X` (and any `*.secret*` / token key).
            Some(Prog::Aws) if cmd.positionals.len() == 3 => {
                let p = &cmd.positionals;
                let (a, b, key) = (self.text(p[0]), self.text(p[1]), self.text(p[2]));
                if a == "configure" && b == "set" {
                    let leaf = key.rsplit('.').next().unwrap_or(key);
                    if leaf == "aws_secret_access_key" {
                        self.hit(tok, "aws_secret_access_key", Restricted, 0.95);
                    } else if matches!(classify_name(leaf), NameClass::Password | NameClass::Secret)
                    {
                        self.hit(tok, "password_flag", Restricted, 0.85);
                    }
                }
            }
            _ => {}
        }
        // Bounded: only the first few and the last matter.
        if cmd.positionals.len() < 8 {
            cmd.positionals.push(tok);
        } else if let Some(last) = cmd.positionals.last_mut() {
            *last = tok;
        }
    }

    /// End of a simple command: rules that need its last word.
    fn finish(&mut self, cmd: &Cmd) {
        // `htpasswd -b[c] file user PASSWORD`, `htpasswd -nb user PASSWORD`.
        if cmd.prog == Some(Prog::Htpasswd)
            && cmd.batch
            && cmd.positionals.len() >= 2
            && let Some(&last) = cmd.positionals.last()
        {
            self.hit(last, "password_flag", Restricted, 0.9);
        }
    }

    /// Split a script into simple commands of words, the way a shell would for our purpose:
    /// quotes group, backslash escapes, `;` `|` `&` `(` `)` and newlines end a command.
    /// Expansion is not performed; `$VAR` values are placeholders to us.
    fn shell_words(&self, t: Tok) -> Vec<Vec<Tok>> {
        let s = self.text(t).as_bytes();
        let mut segs: Vec<Vec<Tok>> = Vec::new();
        let mut cur: Vec<Tok> = Vec::new();
        let ends_cmd = |c: u8| matches!(c, b';' | b'|' | b'&' | b'(' | b')' | b'\n');
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if ends_cmd(c) {
                if !cur.is_empty() {
                    segs.push(std::mem::take(&mut cur));
                }
                i += 1;
                continue;
            }
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < s.len() {
                let c = s[i];
                if c.is_ascii_whitespace() || ends_cmd(c) {
                    break;
                }
                match c {
                    b'\'' => {
                        i += 1;
                        while i < s.len() && s[i] != b'\'' {
                            i += 1;
                        }
                        i += 1;
                    }
                    b'"' => {
                        i += 1;
                        while i < s.len() && s[i] != b'"' {
                            i += if s[i] == b'\\' { 2 } else { 1 };
                        }
                        i += 1;
                    }
                    b'\\' => i += 2,
                    _ => i += 1,
                }
            }
            let end = i.min(s.len());
            cur.push(Tok {
                arg: t.arg,
                start: t.start + start,
                end: t.start + end,
            });
        }
        if !cur.is_empty() {
            segs.push(cur);
        }
        segs
    }
}
