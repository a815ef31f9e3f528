//! crosscast-host (work in progress).
