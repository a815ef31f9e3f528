//! crosscast-media (work in progress).
