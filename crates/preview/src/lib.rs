//! crosscast-preview (work in progress).
