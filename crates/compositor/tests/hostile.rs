//! Hostile clients: one that truncates its pool under a held frame, one that writes garbage
//! on the socket, and more clients than allowed. Each time a well-behaved client (weston's
//! simple-shm) must still stream afterwards.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{run_clock, spawn, start, start_with, wait_first_frame};
use crosscast_compositor::CompositorError;
use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_compositor::WlCompositor, wl_registry::WlRegistry, wl_shm,
    wl_shm::WlShm, wl_shm_pool::WlShmPool, wl_surface::WlSurface,
};
use wayland_client::{delegate_noop, Connection, Dispatch, QueueHandle};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

/// The hostile client's state: just enough xdg-shell to get configured.
#[derive(Default)]
struct Hostile {
    configured: Option<u32>,
}

impl Dispatch<WlRegistry, GlobalListContents> for Hostile {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: wayland_client::protocol::wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for Hostile {
    fn event(
        _: &mut Self,
        wm: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for Hostile {
    fn event(
        state: &mut Self,
        _: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            state.configured = Some(serial);
        }
    }
}

delegate_noop!(Hostile: ignore WlCompositor);
delegate_noop!(Hostile: ignore WlSurface);
delegate_noop!(Hostile: ignore WlShm);
delegate_noop!(Hostile: ignore WlShmPool);
delegate_noop!(Hostile: ignore WlBuffer);
delegate_noop!(Hostile: ignore xdg_toplevel::XdgToplevel);

/// Maps a 64x64 toplevel whose buffer lives in `memfd`, with a gradient so it is not uniform.
fn map_toplevel(
    conn: &Connection,
) -> (
    wayland_client::EventQueue<Hostile>,
    Hostile,
    WlSurface,
    OwnedFd,
) {
    let (globals, mut queue) = registry_queue_init::<Hostile>(conn).expect("registry");
    let qh = queue.handle();
    let compositor: WlCompositor = globals.bind(&qh, 1..=4, ()).expect("wl_compositor");
    let shm: WlShm = globals.bind(&qh, 1..=1, ()).expect("wl_shm");
    let wm: xdg_wm_base::XdgWmBase = globals.bind(&qh, 1..=1, ()).expect("xdg_wm_base");
    let surface = compositor.create_surface(&qh, ());
    let xdg = wm.get_xdg_surface(&surface, &qh, ());
    let _toplevel = xdg.get_toplevel(&qh, ());
    surface.commit();
    let mut st = Hostile::default();
    while st.configured.is_none() {
        queue
            .blocking_dispatch(&mut st)
            .expect("dispatch until configured");
    }
    xdg.ack_configure(st.configured.expect("configured"));

    let (w, h) = (64i32, 64i32);
    let size = (w * h * 4) as usize;
    let memfd =
        rustix::fs::memfd_create("hostile", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
    let pixels: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut file = std::fs::File::from(memfd.try_clone().expect("dup memfd"));
    file.write_all(&pixels).expect("fill memfd");
    let pool = shm.create_pool(memfd.as_fd(), size as i32, &qh, ());
    let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, &qh, ());
    surface.attach(Some(&buffer), 0, 0);
    surface.damage(0, 0, w, h);
    surface.commit();
    queue
        .roundtrip(&mut st)
        .expect("roundtrip after first frame");
    (queue, st, surface, memfd)
}

/// A client that shrinks its pool to nothing under the frame the host holds: reading it is
/// caught (no crash), `with_held` says so, the client is disconnected with a protocol error,
/// the log says so, and another client streams afterwards.
#[test]
fn truncated_pool_disconnects_only_that_client() {
    let (dir, mut comp) = start();
    let stream = UnixStream::connect(comp.socket_path()).expect("connect");
    let conn = Connection::from_socket(stream).expect("wayland connection");
    let (mut queue, mut st, surface, memfd) = map_toplevel(&conn);

    assert!(
        comp.wait_frame(Duration::from_secs(3)),
        "no frame from the hostile client"
    );
    let info = comp.acquire().expect("acquire").expect("a frame");
    assert_eq!((info.width, info.height), (64, 64));
    let read = comp
        .with_held(common::non_uniform)
        .expect("read before truncation");
    assert_eq!(read, Some(true), "the gradient is readable in place");

    rustix::fs::ftruncate(&memfd, 0).expect("ftruncate");
    surface.commit();
    let _ = conn.flush();

    // Read every byte: the pages are gone, so this faults, and must be caught.
    let res = comp.with_held(|f| f.data.iter().map(|&b| u64::from(b)).sum::<u64>());
    assert!(
        matches!(res, Err(CompositorError::ClientMemory { .. })),
        "with_held after truncation gave {res:?}"
    );
    assert!(
        matches!(comp.with_held(|_| ()), Ok(None)),
        "the frame is dropped"
    );

    // The client sees the protocol error.
    let deadline = Instant::now() + Duration::from_secs(3);
    let client_err = loop {
        match queue.roundtrip(&mut st) {
            Err(e) => break e.to_string(),
            Ok(_) if Instant::now() > deadline => panic!("hostile client was not disconnected"),
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    assert!(
        client_err.contains("wl_shm") || client_err.contains("rotocol"),
        "client error {client_err}"
    );
    let c = comp.counters();
    assert_eq!(c.bad_buffers, 1, "{c:?}");
    let log = comp.take_log();
    assert!(log.iter().any(|l| l.contains("truncated")), "log {log:?}");
    assert!(
        log.iter().any(|l| l.contains("protocol error")),
        "log {log:?}"
    );

    let good = spawn(&dir.0, "weston-simple-shm", &[], &[], "weston");
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame after the hostile one"
    );
    let stats = run_clock(&mut comp, Duration::from_secs(1));
    assert!(stats.new_frames >= 40, "{stats:?}");
    assert!(stats.read_errors.is_empty(), "{stats:?}");
    drop(good);
}

/// Random bytes on the socket: wayland-server drops that connection, the log says so, and a
/// well-behaved client still streams.
#[test]
fn garbage_on_the_socket_is_dropped() {
    let (dir, mut comp) = start();
    let mut s = UnixStream::connect(comp.socket_path()).expect("connect");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = s.write_all(&junk);
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // The server closes the connection: reading ends (EOF or reset), it does not time out.
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "garbage client still connected after 3 s; log {:?}",
                    comp.take_log()
                )
            }
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.client_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = comp.take_log();
    assert!(
        log.iter()
            .any(|l| l.contains("gone") || l.contains("disconnected")),
        "log {log:?}"
    );
    assert_eq!(comp.client_count(), 0);

    let good = spawn(&dir.0, "weston-simple-shm", &[], &[], "weston");
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame after the garbage"
    );
    let stats = run_clock(&mut comp, Duration::from_secs(1));
    assert!(stats.new_frames >= 40, "{stats:?}");
    drop(good);
}

/// With `max_clients` connected, more connections are refused at accept.
#[test]
fn clients_beyond_the_limit_are_refused() {
    let (_dir, comp) = start_with(1);
    let _first = UnixStream::connect(comp.socket_path()).expect("connect first");
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.client_count() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(comp.client_count(), 1);
    let mut second = UnixStream::connect(comp.socket_path()).expect("connect second");
    second
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut b = [0u8; 16];
    // Closed by the server: EOF (or a reset), not a read timeout of a connection it kept.
    let r = second.read(&mut b);
    assert!(
        matches!(&r, Ok(0))
            || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the second connection was kept: {r:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.counters().clients_refused < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(comp.counters().clients_refused, 1);
    assert_eq!(comp.client_count(), 1);
    assert!(comp.take_log().iter().any(|l| l.contains("refused")));
}
