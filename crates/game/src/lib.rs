//! crosscast-game (work in progress).
