//! `surface`: crosscast's zero-copy slot handoff through crosscast-ipc's BufferQueue.

use std::os::fd::OwnedFd;

use super::{Send, Setup};

/// Parent side.
pub(crate) fn setup(_size: usize) -> Result<Setup, String> {
    Err("crosscast-ipc's BufferQueue is not available yet".into())
}

/// Peer side.
pub(crate) fn sender(_ctl: OwnedFd, _size: usize) -> Result<Box<dyn Send>, String> {
    Err("crosscast-ipc's BufferQueue is not available yet".into())
}
