//! X11 games through Xwayland: the game gets an X display next to its Wayland socket, served
//! by an Xwayland that is an ordinary Wayland client of crosscast's compositor.
//!
//! ## Rootful, not rootless
//!
//! Xwayland runs **rootful** (`Xwayland :N -listenfd 3 -nolisten tcp -noreset -shm`, no
//! `-rootless`): it maps one xdg toplevel showing the whole X screen, and the game's X windows
//! are drawn on that screen by the X server itself. The compositor configures that toplevel
//! fullscreen at the stream size and streams its `wl_shm` buffers like any client's, copy-free.
//! Streaming one game needs exactly one surface at the stream size, which rootful gives for
//! free. Rootless would make every X window its own Wayland surface, which needs an X11 window
//! manager inside the compositor (smithay's `X11Wm`: reparenting, stacking, ICCCM/EWMH
//! properties, focus) and then a choice of which X window to stream; none of that buys anything
//! for a single fullscreen game. The root window's size comes from the compositor's one output
//! (its mode is the stream size): Xwayland 22.1 sizes a rootful screen from the outputs (it
//! has no `-geometry`; that came in 23.1), so an X game sees a screen of exactly the stream's
//! size. `-shm` because the compositor only streams `wl_shm` buffers (glamor would hand it
//! dmabufs).
//!
//! ## Where the socket is
//!
//! The host owns the listening socket ([`X11Display`]). Strict sandbox: it is
//! `<runtime_dir>/.X11-unix/X0`, and the game's sandbox bind-mounts that directory onto
//! `/tmp/.X11-unix` (libxcb accepts no socket path in `DISPLAY`), with `DISPLAY=:0`; no other
//! X server is reachable (the private `/tmp` and network namespace hide the host's). Off: a free
//! number `N` is taken in `/tmp` as X servers take one (lock file `/tmp/.X<N>-lock`, `O_EXCL`,
//! holding the pid; socket `/tmp/.X11-unix/X<N>`), both removed on drop. The socket is mode
//! 0600: Xwayland runs without X authorization, so only this user may connect.
//!
//! ## Lazily started
//!
//! [`XwaylandServer::serve`] starts a watcher thread that polls the socket for a waiting
//! client (without accepting it) and only then spawns Xwayland with the socket on fd 3
//! (`-listenfd 3`): a Wayland game never pays for an X server. With `eager` (`--x11`) it is
//! spawned up front. Xwayland runs at the game's sandbox level with the game's runtime and data
//! directories (it executes on the game's behalf), its stderr goes to the host's log prefixed
//! `Xwayland: `, and it is stopped when the server is dropped (the game run's end). A missing
//! `Xwayland` names the Debian package `xwayland`: as [`serve`](XwaylandServer::serve)'s error
//! when eager, else as a note when the first X client connects, after which X clients are
//! refused (their connection closed) rather than left hanging.
#![forbid(unsafe_code)]

mod display;
mod error;
mod server;

pub use display::{X11Display, X11_UNIX_DIR};
pub use error::XwaylandError;
pub use server::{Notify, XwaylandOptions, XwaylandServer, LISTEN_FD};
