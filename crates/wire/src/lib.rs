//! crosscast-wire (work in progress).
