//! crosscast-ipc: the Linux transport between the game and the host (work in progress).
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod os;
