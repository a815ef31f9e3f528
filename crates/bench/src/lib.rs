//! crosscast-bench (work in progress).
