//! A small reader of kernel BTF: just enough to find struct member offsets.
//!
//! Rust eBPF has no CO-RE relocations, so the agent resolves every kernel struct offset the
//! probes need from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and passes them to
//! the programs as a load-time global. aya-obj parses BTF too but keeps type lookup private.

use std::{collections::HashMap, path::Path};

use sensor_common::KernelOffsets;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("member `{strukt}.{member}` is a bitfield or not byte aligned")]
    Unaligned { strukt: String, member: String },
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    bit_offset: u32,
    bitfield: bool,
}

#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    name_off: u32,
    /// For modifiers and typedefs: the referenced type.
    ref_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types by id (id 0 is `void`) and the string section.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(data: &[u8], off: usize) -> Result<u32, BtfError> {
    data.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| BtfError::Malformed(format!("truncated at byte {off}")))
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parse little-endian BTF. Never panics on malformed input.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = data
            .get(0..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| BtfError::Malformed("shorter than a header".into()))?;
        if magic != 0xeb9f {
            return Err(BtfError::Malformed(format!(
                "bad magic {magic:#x} (big-endian BTF is not supported)"
            )));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let section = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|s| s.checked_add(len).map(|e| (s, e)))
                .and_then(|(s, e)| data.get(s..e))
                .ok_or_else(|| BtfError::Malformed(format!("{what} section out of bounds")))
        };
        let type_data = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?.to_vec();

        let mut types = vec![Type {
            kind: 0,
            name_off: 0,
            ref_type: 0,
            members: Vec::new(),
        }];
        let mut pos = 0usize;
        while pos < type_data.len() {
            let name_off = u32_at(type_data, pos)?;
            let info = u32_at(type_data, pos + 4)?;
            let size_or_type = u32_at(type_data, pos + 8)?;
            pos += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    members.reserve(vlen);
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let raw = u32_at(type_data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(type_data, m)?,
                            type_id: u32_at(type_data, m + 4)?,
                            bit_offset: if kind_flag { raw & 0x00ff_ffff } else { raw },
                            bitfield: kind_flag && raw >> 24 != 0,
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                0 | 20.. => {
                    return Err(BtfError::Malformed(format!(
                        "unknown type kind {kind} at byte {pos}"
                    )));
                }
                _ => 0,
            };
            pos += extra;
            types.push(Type {
                kind,
                name_off,
                ref_type: size_or_type,
                members,
            });
        }
        let mut btf = Btf {
            types,
            strings,
            structs_by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name_off != 0 {
                let name = btf.string(t.name_off).to_owned();
                // The first definition wins; vmlinux has one per name.
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let start = off as usize;
        let Some(rest) = self.strings.get(start..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Skip typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.ref_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Bit offset of `name` inside the struct/union `t`, looking through anonymous members.
    fn find_in(&self, t: &Type, name: &str, depth: u32) -> Option<(u32, bool, u32)> {
        if depth > 8 {
            return None;
        }
        for m in &t.members {
            if m.name_off != 0 {
                if self.string(m.name_off) == name {
                    return Some((m.bit_offset, m.bitfield, m.type_id));
                }
            } else if let Some(inner) = self.resolve(m.type_id)
                && matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                && let Some((off, bf, ty)) = self.find_in(inner, name, depth + 1)
            {
                return Some((m.bit_offset + off, bf, ty));
            }
        }
        None
    }

    /// Byte offset of a (possibly dotted, e.g. `f_path.dentry`) member of `struct strukt`.
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut t = self
            .types
            .get(id as usize)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut bits = 0u32;
        let no_member = || BtfError::NoMember {
            strukt: strukt.to_owned(),
            member: path.to_owned(),
        };
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, bitfield, ty) = self.find_in(t, part, 0).ok_or_else(no_member)?;
            if bitfield || off % 8 != 0 {
                return Err(BtfError::Unaligned {
                    strukt: strukt.to_owned(),
                    member: path.to_owned(),
                });
            }
            bits += off;
            if parts.peek().is_some() {
                t = self
                    .resolve(ty)
                    .filter(|t| matches!(t.kind, KIND_STRUCT | KIND_UNION))
                    .ok_or_else(no_member)?;
            }
        }
        Ok(bits / 8)
    }

    /// Every offset the probes need, or the first one this kernel lacks.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let o = |s: &str, m: &str| self.member_offset(s, m);
        Ok(KernelOffsets {
            task_real_parent: o("task_struct", "real_parent")?,
            task_tgid: o("task_struct", "tgid")?,
            task_pid: o("task_struct", "pid")?,
            task_cred: o("task_struct", "cred")?,
            task_mm: o("task_struct", "mm")?,
            task_exit_code: o("task_struct", "exit_code")?,
            cred_uid: o("cred", "uid")?,
            cred_gid: o("cred", "gid")?,
            cred_euid: o("cred", "euid")?,
            cred_egid: o("cred", "egid")?,
            mm_arg_start: o("mm_struct", "arg_start")?,
            mm_arg_end: o("mm_struct", "arg_end")?,
            bprm_file: o("linux_binprm", "file")?,
            bprm_filename: o("linux_binprm", "filename")?,
            bprm_argc: o("linux_binprm", "argc")?,
            file_inode: o("file", "f_inode")?,
            file_dentry: o("file", "f_path.dentry")?,
            dentry_name: o("dentry", "d_name.name")?,
            inode_ino: o("inode", "i_ino")?,
            inode_sb: o("inode", "i_sb")?,
            inode_nlink: o("inode", "i_nlink")?,
            sb_dev: o("super_block", "s_dev")?,
            task_files: o("task_struct", "files")?,
            files_fdt: o("files_struct", "fdt")?,
            fdtable_fd: o("fdtable", "fd")?,
            inode_mode: o("inode", "i_mode")?,
            file_path: o("file", "f_path")?,
            file_mode: o("file", "f_mode")?,
            file_flags: o("file", "f_flags")?,
            _pad: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a BTF blob: `struct outer { int a; union { int b; struct inner in; }; }` with
    /// `struct inner { long x; int y; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0inner\0in\0x\0y\0long\0".to_vec();
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map(|p| p as u32 + 1)
                .unwrap()
        };
        let mut t = Vec::new();
        let push = |t: &mut Vec<u8>, words: &[u32]| {
            for w in words {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int (4 bytes)
        push(&mut t, &[s("int"), KIND_INT << 24, 4, 32]);
        // 2: long
        push(&mut t, &[s("long"), KIND_INT << 24, 8, 64]);
        // 3: struct inner { long x @0; int y @64 }
        push(&mut t, &[s("inner"), (KIND_STRUCT << 24) | 2, 16]);
        push(&mut t, &[s("x"), 2, 0, s("y"), 1, 64]);
        // 4: anonymous union { int b; struct inner in; }
        push(&mut t, &[0, (KIND_UNION << 24) | 2, 16]);
        push(&mut t, &[s("b"), 1, 0, s("in"), 3, 0]);
        // 5: struct outer { int a @0; union @64 }
        push(&mut t, &[s("outer"), (KIND_STRUCT << 24) | 2, 24]);
        push(&mut t, &[s("a"), 1, 0, 0, 4, 64]);
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1);
        out.push(0);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_dotted_paths() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "in.y").unwrap(), 16);
        assert!(matches!(
            btf.member_offset("outer", "nope"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("missing", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let full = sample();
        for cut in 0..full.len() {
            let _ = Btf::parse(&full[..cut]);
        }
        assert!(Btf::parse(b"garbage").is_err());
    }

    #[test]
    fn running_kernel_btf_has_every_offset_when_present() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skip: this kernel exposes no BTF at {}", path.display());
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let o = btf.kernel_offsets().unwrap();
        assert!(o.task_tgid > 0 && o.cred_euid > o.cred_uid);
        assert!(o.mm_arg_end > o.mm_arg_start);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Btf::parse(&data);
        }
    }
}
