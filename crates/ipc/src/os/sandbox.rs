//! The game's sandbox: `no_new_privs`, Landlock and a seccomp filter.
//!
//! The game calls [`apply_sandbox`] once it holds its socket and key and before it renders
//! (and, ideally, before it starts threads). From then on it can read files but not write,
//! create or delete any; it cannot open a socket or connect anywhere (it keeps its inherited
//! socket), cannot run another program, cannot debug or write into other processes, and can
//! signal only itself. Each layer covers for the other: the seccomp filter alone already
//! forbids all of the above, Landlock adds path-level read-only access and TCP/scope rules
//! enforced by the kernel's LSM where the kernel has it.
//!
//! Denials return `EPERM` (seccomp) or `EACCES` (Landlock); nothing is killed, so a game that
//! probes gets an error it can report.
//!
//! ```no_run
//! use crosscast_ipc::os::sandbox::{apply_sandbox, SandboxLevel};
//! let report = apply_sandbox(SandboxLevel::Strict)?;
//! eprintln!("{report}");
//! # Ok::<(), crosscast_ipc::os::OsError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, LandlockStatus, RestrictSelfAttr, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{OsError, Result};

/// The Landlock ABI whose access rights this code was written and tested against; newer
/// kernels enforce it as is, older ones enforce the subset they know (best effort).
const LANDLOCK_ABI: ABI = ABI::V7;

/// How much sandbox to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxLevel {
    /// `no_new_privs`, Landlock (where available) and the seccomp filter.
    #[default]
    Strict,
    /// Nothing: for debugging a game outside the sandbox.
    Off,
}

impl fmt::Display for SandboxLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SandboxLevel::Strict => "strict",
            SandboxLevel::Off => "off",
        })
    }
}

/// Parse error of [`SandboxLevel`]: the accepted values are `strict` and `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sandbox level {0:?}: use `strict` or `off`")]
pub struct ParseSandboxLevelError(pub String);

impl FromStr for SandboxLevel {
    type Err = ParseSandboxLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(SandboxLevel::Strict),
            "off" => Ok(SandboxLevel::Off),
            other => Err(ParseSandboxLevelError(other.to_owned())),
        }
    }
}

/// What Landlock enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockReport {
    /// Not requested.
    Off,
    /// The kernel has no (enabled) Landlock; only seccomp protects the file system.
    NotSupported,
    /// In force.
    Enforced {
        /// The kernel's Landlock ABI version.
        abi: i32,
        /// Some requested rights are unknown to this kernel and not enforced.
        partial: bool,
        /// Applied to every thread; otherwise to the calling thread and threads it creates
        /// later (kernels before ABI 8).
        all_threads: bool,
    },
}

/// What [`apply_sandbox`] put in force, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    /// The requested level.
    pub level: SandboxLevel,
    /// `PR_SET_NO_NEW_PRIVS` is set: exec can never gain privileges.
    pub no_new_privs: bool,
    /// Landlock status.
    pub landlock: LandlockReport,
    /// The seccomp filter is installed on every thread.
    pub seccomp: bool,
    /// Number of syscalls the seccomp filter denies (wholly or for some arguments).
    pub seccomp_denied_syscalls: usize,
}

impl fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.level == SandboxLevel::Off {
            return f.write_str("sandbox off: nothing enforced");
        }
        write!(
            f,
            "sandbox {}: no_new_privs {}; ",
            self.level,
            if self.no_new_privs { "on" } else { "OFF" }
        )?;
        match self.landlock {
            LandlockReport::Off => f.write_str("landlock: off; ")?,
            LandlockReport::NotSupported => f.write_str("landlock: not supported; ")?,
            LandlockReport::Enforced {
                abi,
                partial,
                all_threads,
            } => write!(
                f,
                "landlock: enforced (ABI {abi}{}, {}; read-only files, no TCP, scoped signals \
                 and abstract sockets); ",
                if partial { ", partially" } else { "" },
                if all_threads {
                    "all threads"
                } else {
                    "this thread and its children"
                }
            )?,
        }
        if self.seccomp {
            write!(
                f,
                "seccomp: enforced (all threads; {} syscalls denied: sockets, connect, exec, \
                 ptrace, io_uring, writing opens, file system changes, foreign signals)",
                self.seccomp_denied_syscalls
            )
        } else {
            f.write_str("seccomp: off")
        }
    }
}

/// Applies the sandbox to this process and reports what is in force.
///
/// Call it in the game after it has adopted its inherited fds and read its key, before it
/// renders or loads anything from untrusted input, and before it starts threads: seccomp is
/// synchronised to all threads, but Landlock before ABI 8 covers only the calling thread and
/// the threads it creates afterwards. It cannot be undone. Missing Landlock support is
/// reported, not an error; a failure to install what the kernel does support is an error,
/// and the game should then not run.
/// See [landlock(7)](https://man7.org/linux/man-pages/man7/landlock.7.html),
/// [seccomp(2)](https://man7.org/linux/man-pages/man2/seccomp.2.html),
/// [prctl(2) PR_SET_NO_NEW_PRIVS](https://man7.org/linux/man-pages/man2/prctl.2.html).
#[doc(alias = "seccomp")]
#[doc(alias = "landlock_restrict_self")]
#[doc(alias = "PR_SET_NO_NEW_PRIVS")]
pub fn apply_sandbox(level: SandboxLevel) -> Result<SandboxReport> {
    if level == SandboxLevel::Off {
        return Ok(SandboxReport {
            level,
            no_new_privs: false,
            landlock: LandlockReport::Off,
            seccomp: false,
            seccomp_denied_syscalls: 0,
        });
    }
    rustix::thread::set_no_new_privs(true).map_err(OsError::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    let landlock = apply_landlock()?;
    let denied = apply_seccomp()?;
    Ok(SandboxReport {
        level,
        no_new_privs: rustix::thread::no_new_privs().unwrap_or(false),
        landlock,
        seccomp: true,
        seccomp_denied_syscalls: denied,
    })
}

fn apply_landlock() -> Result<LandlockReport> {
    let abi = LANDLOCK_ABI;
    let err = |e: landlock::RulesetError| OsError::Landlock(e.to_string());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(err)?
        .scope(Scope::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
        .map_err(err)?
        .all_threads(true)
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    let kernel_abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
    };
    Ok(match status.ruleset {
        RulesetStatus::NotEnforced => LandlockReport::NotSupported,
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => {
            LandlockReport::Enforced {
                abi: kernel_abi,
                // The crate also says "partial" when only the all-threads flag (ABI 8) is
                // missing; the access rights are complete on any kernel of our ABI or newer.
                partial: status.ruleset == RulesetStatus::PartiallyEnforced
                    && kernel_abi < LANDLOCK_ABI as i32,
                all_threads: status.all_threads,
            }
        }
    })
}

/// Syscalls denied whatever their arguments.
const DENY_ALWAYS: &[libc::c_long] = &[
    // Networking of its own: the game keeps only its inherited socket.
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    // Running other programs.
    libc::SYS_execve,
    libc::SYS_execveat,
    // Reaching into other processes.
    libc::SYS_ptrace,
    libc::SYS_process_vm_writev,
    libc::SYS_process_vm_readv,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_tkill,
    // io_uring performs opens, connects and socket creation without passing seccomp.
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    // openat2 hides its flags behind a pointer seccomp cannot read.
    libc::SYS_openat2,
    // File system changes (Landlock denies these too, where the kernel has it).
    libc::SYS_unlinkat,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_truncate,
    libc::SYS_fchmodat,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rmdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mkdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rename,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_link,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_symlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chmod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chown,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lchown,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utime,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utimes,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_futimesat,
];

/// Open flags that make an open writing or creating; any of them set means denied.
const WRITE_OPEN_FLAGS: [libc::c_int; 4] =
    [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC];

/// Builds and installs the filter on all threads; returns how many syscalls it restricts.
fn apply_seccomp() -> Result<usize> {
    let err = |e: seccompiler::BackendError| OsError::Seccomp(e.to_string());
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| OsError::Seccomp(e.to_string()))?;
    let pid = u64::from(std::process::id());

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in DENY_ALWAYS {
        rules.insert(nr, Vec::new());
    }
    // Writing opens: one rule per flag bit, so "any bit set" matches (rules are or-ed).
    let open_rules = |flags_arg: u8| -> Result<Vec<SeccompRule>> {
        WRITE_OPEN_FLAGS
            .iter()
            .map(|&bit| {
                let bit = bit as u64;
                let cond = SeccompCondition::new(
                    flags_arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(bit),
                    bit,
                )
                .map_err(err)?;
                SeccompRule::new(vec![cond]).map_err(err)
            })
            .collect()
    };
    rules.insert(libc::SYS_openat, open_rules(2)?);
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_open, open_rules(1)?);
    // Signals only to ourselves: the host and every other process of the user are off limits
    // (raise/abort use tgkill on our own pid and stay allowed).
    let not_self = || -> Result<Vec<SeccompRule>> {
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, pid)
            .map_err(err)?;
        Ok(vec![SeccompRule::new(vec![cond]).map_err(err)?])
    };
    for nr in [
        libc::SYS_kill,
        libc::SYS_tgkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        rules.insert(nr, not_self()?);
    }
    let denied = rules.len();

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| OsError::Seccomp(e.to_string()))?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| OsError::Seccomp(e.to_string()))?;
    #[cfg(target_arch = "x86_64")]
    seccompiler::apply_filter_all_threads(&x32_filter())
        .map_err(|e| OsError::Seccomp(e.to_string()))?;
    Ok(denied)
}

/// On x86_64 the x32 ABI reaches the same kernel under other syscall numbers (bit 30 set)
/// with the same audit arch, which the main filter would let through; deny all of them.
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter;
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JSET | BPF_K, BPF_RET | BPF_K (linux/filter.h).
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JSET_K: u16 = 0x45;
    const BPF_RET_K: u16 = 0x06;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0.
        insn(BPF_LD_W_ABS, 0, 0, 0),
        insn(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn level_parses_and_displays() {
        assert_eq!("strict".parse::<SandboxLevel>(), Ok(SandboxLevel::Strict));
        assert_eq!("off".parse::<SandboxLevel>(), Ok(SandboxLevel::Off));
        assert!("loose".parse::<SandboxLevel>().is_err());
        assert_eq!(SandboxLevel::Strict.to_string(), "strict");
    }

    #[test]
    fn off_applies_nothing() {
        let report = apply_sandbox(SandboxLevel::Off).unwrap();
        assert_eq!(report.to_string(), "sandbox off: nothing enforced");
        assert!(!report.seccomp);
    }

    #[test]
    fn report_line_names_each_layer() {
        let report = SandboxReport {
            level: SandboxLevel::Strict,
            no_new_privs: true,
            landlock: LandlockReport::Enforced {
                abi: 7,
                partial: false,
                all_threads: false,
            },
            seccomp: true,
            seccomp_denied_syscalls: 60,
        };
        let line = report.to_string();
        assert!(line.contains("landlock: enforced (ABI 7"), "{line}");
        assert!(line.contains("seccomp: enforced"), "{line}");
        let none = SandboxReport {
            landlock: LandlockReport::NotSupported,
            ..report
        };
        assert!(none.to_string().contains("landlock: not supported"));
    }

    const LANDLOCK_CHILD: &str = "CROSSCAST_OS_LANDLOCK_CHILD";

    /// Landlock on its own (the seccomp filter would deny the same probes first and hide it):
    /// a re-run of this test binary restricts itself and must be refused writes and TCP.
    #[test]
    fn landlock_alone_makes_files_read_only_and_blocks_tcp() {
        if let Ok(dir) = std::env::var(LANDLOCK_CHILD) {
            let dir = std::path::PathBuf::from(dir);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            match apply_landlock().unwrap() {
                LandlockReport::NotSupported => {
                    eprintln!("landlock-child: not supported");
                    return;
                }
                LandlockReport::Enforced { .. } => {}
                LandlockReport::Off => panic!("landlock reported off"),
            }
            let eacces = Some(libc::EACCES);
            let create = std::fs::File::create(dir.join("escaped.txt"));
            assert_eq!(create.err().and_then(|e| e.raw_os_error()), eacces);
            let mkdir = std::fs::create_dir(dir.join("escaped-dir"));
            assert_eq!(mkdir.err().and_then(|e| e.raw_os_error()), eacces);
            let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(20));
            assert_eq!(tcp.err().and_then(|e| e.raw_os_error()), eacces);
            std::fs::read(std::env::current_exe().unwrap()).unwrap();
            eprintln!("landlock-child: enforced");
            return;
        }
        let dir = std::env::temp_dir().join(format!(
            "crosscast-landlock-{}-{}",
            std::process::id(),
            super::super::process::monotonic_ns()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "os::sandbox::tests::landlock_alone_makes_files_read_only_and_blocks_tcp",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(LANDLOCK_CHILD, &dir)
            .output()
            .unwrap();
        let escaped = dir.join("escaped.txt").exists() || dir.join("escaped-dir").exists();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!escaped);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("landlock-child: enforced")
                || stderr.contains("landlock-child: not supported"),
            "the child did not run the probes: {stderr}"
        );
    }

    #[test]
    fn filter_compiles_for_this_arch() {
        // Building (not installing) the program exercises every rule's construction.
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for &nr in DENY_ALWAYS {
            assert!(rules.insert(nr, Vec::new()).is_none(), "duplicate {nr}");
        }
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )
        .unwrap();
        let program: BpfProgram = filter.try_into().unwrap();
        assert!(program.len() > DENY_ALWAYS.len());
    }
}
