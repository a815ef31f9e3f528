//! What clients are told about the output: the fullscreen configure at the stream's size,
//! presentation feedback on the output clock (`presented` with the stream's period and the
//! output frame as sequence, `discarded` for a frame replaced before the host took it), and
//! buffer releases. A client written for the test (wayland-client) checks each event.

mod common;

use std::time::Duration;

use common::start;
use common::wl::{Feedback, TestClient};
use crosscast_compositor::monotonic_ns;
use crosscast_wire::FrameRate;

#[test]
fn feedback_and_releases_follow_the_output_clock() {
    let (_dir, mut comp) = start();
    let mut client = TestClient::connect(comp.socket_path());
    assert_eq!(client.events.configure_size, Some((320, 240)));
    assert!(client.events.fullscreen, "configured fullscreen");

    let (a, _fa) = client.buffer(32, 16, 0);
    let (b, _fb) = client.buffer(32, 16, 50);
    let (c, _fc) = client.buffer(32, 16, 100);
    let period = FrameRate::integer(common::FPS).period_ns() as u32;

    let first = client.commit(Some(&a), true);
    client.roundtrip().expect("roundtrip");
    assert!(comp.wait_frame(Duration::from_secs(2)), "first frame");
    let info = comp.acquire().expect("acquire").expect("frame a");
    assert_eq!((info.width, info.height), (32, 16));
    let t1 = monotonic_ns();
    comp.present(7, t1);
    std::thread::sleep(Duration::from_millis(50));
    client.roundtrip().expect("roundtrip");
    assert_eq!(
        client.events.feedback,
        vec![Feedback::Presented {
            commit: first,
            ns: t1,
            refresh_ns: period,
            seq: 7
        }]
    );
    assert_eq!(
        client.events.released, 0,
        "the held buffer stays with the host"
    );

    // Two commits before the host looks: the first is replaced (discarded, released).
    let skipped = client.commit(Some(&b), true);
    let shown = client.commit(Some(&c), true);
    client.roundtrip().expect("roundtrip");
    let info2 = comp.acquire().expect("acquire").expect("frame c");
    assert_eq!(info2.seq, info.seq + 2, "b was skipped");
    assert_eq!(comp.counters().frames_skipped, 1);
    let t2 = monotonic_ns();
    comp.present(8, t2);
    std::thread::sleep(Duration::from_millis(50));
    client.roundtrip().expect("roundtrip");
    assert_eq!(
        client.events.feedback[1..],
        [
            Feedback::Discarded { commit: skipped },
            Feedback::Presented {
                commit: shown,
                ns: t2,
                refresh_ns: period,
                seq: 8
            }
        ]
    );
    // b (replaced) and a (held until c was taken) went back; c is held.
    assert_eq!(client.events.released, 2);
    assert!(matches!(
        comp.with_held(common::non_uniform),
        Ok(Some(true))
    ));
    assert_eq!(comp.acquire().expect("acquire"), None, "nothing new");
}
