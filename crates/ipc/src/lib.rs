//! crosscast-ipc (work in progress).
