//! The seccomp filter bwrap installs on the game (`--seccomp FD`).
//!
//! It is a deny list: an arbitrary game must keep every syscall an ordinary program (a shell,
//! Mesa's llvmpipe, SDL) uses, so only the kernel's riskiest and sandbox-escaping interfaces are
//! refused. Denials return `EPERM` (nothing is killed, the program gets an error it can
//! report), except `clone3`, see below.
//!
//! | syscalls | why they are denied |
//! |---|---|
//! | `ptrace`, `process_vm_readv`, `process_vm_writev`, `pidfd_getfd` | reading or writing another process's memory or stealing its fds (the pid namespace already hides the host; this also stops a compromised game from tampering with its own helpers) |
//! | `io_uring_setup`, `io_uring_enter`, `io_uring_register` | io_uring performs opens, connects and more without passing through seccomp, and is a large source of kernel bugs |
//! | `mount`, `umount2`, `pivot_root`, `chroot`, `move_mount`, `fsopen`, `fsconfig`, `fsmount`, `fspick`, `open_tree`, `mount_setattr` | changing the sandbox's file system view (old and new mount API) |
//! | `unshare`, `setns`, `clone` with any `CLONE_NEW*` flag | nested namespaces: the usual first step of user-namespace kernel exploits, and a way to undo the sandbox's view |
//! | `clone3` (`ENOSYS`) | its flags live behind a pointer seccomp cannot read; `ENOSYS` makes glibc fall back to `clone`, whose flags are checked (what Flatpak does) |
//! | `keyctl`, `add_key`, `request_key` | the kernel keyring is not namespaced: other processes' keys, and a history of bugs |
//! | `bpf`, `perf_event_open`, `userfaultfd` | kernel attack surface (eBPF verifier, perf, fault handling used to win exploit races) that no game needs |
//! | `kexec_load`, `kexec_file_load`, `init_module`, `finit_module`, `delete_module` | replacing the kernel or loading code into it |
//! | `open_by_handle_at` | opens files by handle, around the mount view (the "shocker" escape) |
//! | `syslog` | reads the kernel log (addresses, other processes' messages) |
//! | `acct`, `swapon`, `swapoff`, `reboot` | host administration; privileged anyway, denied for a clean `EPERM` |
//! | any x32 syscall (x86_64) | the x32 ABI reaches the same kernel under other numbers with the same audit arch, which would bypass every rule above |
//!
//! Syscalls of another architecture (an i386 program on x86_64) do not pass the filter's
//! architecture check and kill the process: 32-bit games do not run in the strict sandbox.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use crate::SandboxError;

/// Syscalls denied with `EPERM` whatever their arguments (see the module table).
pub(crate) const DENY_ALWAYS: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
];

/// `clone` flags that create a namespace; any of them set means denied.
const CLONE_NEW_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The compiled filter and how many syscalls it restricts (for the status line).
pub(crate) struct Filter {
    /// The classic BPF program, ready for `--seccomp`.
    pub(crate) program: BpfProgram,
    /// Syscalls denied wholly or for some arguments (x32 counted as none).
    pub(crate) denied_syscalls: usize,
}

/// Builds the filter for the architecture this crate was compiled for.
pub(crate) fn build() -> Result<Filter, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(SandboxError::Seccomp)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in DENY_ALWAYS {
        rules.insert(nr, Vec::new());
    }
    // One rule per flag bit, so that "any bit set" matches (rules of a syscall are or-ed).
    // clone's flags are its first argument on x86_64 and aarch64 alike.
    let clone_rules = CLONE_NEW_FLAGS
        .iter()
        .map(|&bit| {
            let bit = bit as u32 as u64;
            let cond =
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit), bit)
                    .map_err(SandboxError::Seccomp)?;
            SeccompRule::new(vec![cond]).map_err(SandboxError::Seccomp)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // clone3 is counted here although its answer comes from the prefix.
    let denied_syscalls = rules.len() + 1;

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(SandboxError::Seccomp)?;
    let main: BpfProgram = filter.try_into().map_err(SandboxError::Seccomp)?;
    // The prefix only ever denies, so running it before the main program's architecture check
    // lets nothing through that the check would stop.
    let mut program = prefix();
    program.extend(main);
    Ok(Filter {
        program,
        denied_syscalls,
    })
}

/// BPF instruction codes (linux/filter.h): load word at absolute offset, jump if equal,
/// jump if any bit set, return constant.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// Instructions run before seccompiler's program: `clone3` gets `ENOSYS` (one filter has one
/// match action, and this one differs), and on x86_64 every x32 syscall gets `EPERM`.
fn prefix() -> Vec<sock_filter> {
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut p = vec![
        // seccomp_data.nr is at offset 0.
        insn(BPF_LD_W_ABS, 0, 0, 0),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        const X32_SYSCALL_BIT: u32 = 0x4000_0000;
        p.push(insn(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT));
        p.push(insn(
            BPF_RET_K,
            0,
            0,
            SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = BPF_JMP_JSET_K;
    p.push(insn(BPF_JMP_JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    p.push(insn(
        BPF_RET_K,
        0,
        0,
        SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    p
}

/// The program as bwrap reads it: the raw `struct sock_filter` array, native byte order.
pub(crate) fn to_bytes(program: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for insn in program {
        out.extend_from_slice(&insn.code.to_ne_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_and_serialises_to_eight_bytes_per_instruction() {
        let f = build().unwrap();
        assert_eq!(f.denied_syscalls, DENY_ALWAYS.len() + 2);
        assert_eq!(to_bytes(&f.program).len(), f.program.len() * 8);
        // No syscall listed twice (a duplicate would silently replace its rules).
        let mut seen = std::collections::BTreeSet::new();
        for nr in DENY_ALWAYS {
            assert!(seen.insert(nr), "syscall {nr} listed twice");
        }
    }

    #[test]
    fn prefix_jumps_land_inside_the_prefix_or_on_the_main_program() {
        let p = prefix();
        for (i, insn) in p.iter().enumerate() {
            if insn.code & 0x07 == 0x05 {
                // A jump's targets are relative to the next instruction.
                assert!(i + 1 + (insn.jt as usize) <= p.len());
                assert!(i + 1 + (insn.jf as usize) <= p.len());
            }
        }
        assert_eq!(p.last().unwrap().k, SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    }
}
