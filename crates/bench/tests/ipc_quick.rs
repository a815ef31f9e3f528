//! `bench ipc --quick` end to end: real peer processes for every transport and size, the JSON
//! report in the schema of docs/design.md, and the chart.
//!
//! Nothing here asserts a speed (the machine may be loaded); it asserts that every case ran
//! (or says why it could not), that every message arrived intact (the receiver checks each
//! payload's checksum and fails the case otherwise), and that the figures are consistent.

use std::path::Path;

use crosscast_bench::ipc::{run_ipc, IpcOptions, Transport, DEFAULT_SIZES, QUICK_COUNT};
use crosscast_bench::stats::DELAY_FIELDS;
use crosscast_bench::BenchError;

const PEER: &str = env!("CARGO_BIN_EXE_crosscast-bench-peer");

/// Every transport must run here, the iceoryx2 reference included: a case that cannot run
/// (iceoryx2 missing from the build or refusing this environment) fails the test, with its
/// reason. Build with `--features iceoryx2,plot` (scripts/test.sh uses `--all-features`).
#[test]
fn quick_run_measures_every_transport_and_size_iceoryx2_included() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ipc.json");
    let plot = dir.path().join("ipc.svg");
    let opts = IpcOptions {
        quick: true,
        json: Some(json.clone()),
        plot: Some(plot.clone()),
        ..IpcOptions::default()
    };
    let mut lines = Vec::new();
    let report = run_ipc(&opts, Path::new(PEER), &mut |l| lines.push(l.to_string())).unwrap();
    assert!(lines.len() >= Transport::ALL.len() * DEFAULT_SIZES.len());

    // The JSON file, read back as plain JSON: the schema of docs/design.md, no Rust types involved.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["bench"], "ipc");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), Transport::ALL.len() * DEFAULT_SIZES.len());
    for t in Transport::ALL.map(Transport::name) {
        for size in DEFAULT_SIZES {
            let row = rows
                .iter()
                .find(|r| r["transport"] == t && r["size_bytes"] == size as u64)
                .unwrap_or_else(|| panic!("no row for {t} at {size} bytes"));
            assert_eq!(row["case"], format!("{t}/{size}"));
            assert!(
                row.get("note").is_none(),
                "{t}/{size} must run here: {}",
                row["note"]
            );
            for key in DELAY_FIELDS {
                assert!(row[key].is_number(), "{t}/{size}: {key} missing in {row}");
            }
            assert_eq!(
                row["messages"].as_u64(),
                Some(QUICK_COUNT as u64),
                "{t}/{size}"
            );
            assert_eq!(
                row["receiver_sched"], "default priority, default timer slack, no busy-poll",
                "{t}/{size}: every receiver is scheduled alike"
            );
            assert_eq!(row["produce"], "on-time", "{t}/{size}");
            let f = |k: &str| row[k].as_f64().unwrap();
            assert!(f("min_us") > 0.0, "{t}/{size}: {row}");
            assert!(f("min_us") <= f("p50_us"), "{t}/{size}: {row}");
            assert!(f("p50_us") <= f("p90_us") && f("p90_us") <= f("p99_us"));
            assert!(f("p99_us") <= f("max_us"), "{t}/{size}: {row}");
            assert!(f("avg_us") >= f("min_us") && f("avg_us") <= f("max_us"));
            assert!((0.0..=1.0).contains(&f("stall_rate")));
            // Only the surface has a thread between the socket and the consumer; its stamp
            // comes before the consumer's, and every other transport carries null, not 0.
            if t == "surface" {
                assert!(f("io_thread_p50_us") > 0.0, "{t}/{size}: {row}");
                // Each frame reaches the consumer strictly after the I/O thread, so the fair
                // delay's percentiles are strictly above the I/O thread's.
                assert!(f("io_thread_p50_us") < f("p50_us"), "{t}/{size}: {row}");
                assert!(f("io_thread_p99_us") < f("p99_us"), "{t}/{size}: {row}");
                // The host session slept for its frames like every other receiver.
                assert_eq!(row["io_polled_frames"], 0, "{t}/{size}: {row}");
            } else {
                assert!(row["io_thread_p50_us"].is_null(), "{t}/{size}: {row}");
                assert!(row["io_thread_p99_us"].is_null(), "{t}/{size}: {row}");
            }
            // Validation comes after the usable object, so the delay to it cannot be smaller.
            assert!(f("validated_p99_us") >= f("p99_us"), "{t}/{size}: {row}");
            assert!(f("validated_p50_us") >= f("p50_us"), "{t}/{size}: {row}");
            assert!(f("checksum_avg_us") > 0.0, "{t}/{size}: {row}");
        }
    }

    // The table has a line per row and the chart is an SVG with a panel per size.
    assert_eq!(report.table().lines().count(), rows.len() + 1);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    for label in ["3 KiB", "4 MiB", "10 MiB", "surface", "iceoryx2"] {
        assert!(svg.contains(label), "chart lacks {label}");
    }
}

#[test]
fn produced_ahead_every_message_still_arrives_intact() {
    // Zero-copy and copying senders alike keep the prepared message until its deadline.
    let opts = IpcOptions {
        quick: true,
        sizes: vec![3072, 4 << 20],
        transports: vec![
            Transport::ShmRing,
            Transport::UdsSeqpacket,
            Transport::Surface,
        ],
        produce_ahead: true,
        ..IpcOptions::default()
    };
    let report = run_ipc(&opts, Path::new(PEER), &mut |_| {}).unwrap();
    assert_eq!(report.rows.len(), 6);
    for row in &report.rows {
        assert_eq!(
            row.summary.map(|s| s.messages),
            Some(QUICK_COUNT),
            "{}: {:?}",
            row.case,
            row.extra
        );
        assert_eq!(row.extra["produce"], "ahead", "{}", row.case);
    }
}

#[test]
fn a_peer_that_is_not_a_peer_gives_a_reason_not_an_error() {
    let opts = IpcOptions {
        quick: true,
        sizes: vec![3072],
        transports: vec![Transport::Pipe, Transport::Surface],
        ..IpcOptions::default()
    };
    let report = run_ipc(&opts, Path::new("/bin/false"), &mut |_| {}).unwrap();
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert!(row.summary.is_none(), "{}: no delays measured", row.case);
        let note = row.extra["note"].as_str().unwrap();
        assert!(note.starts_with("could not run"), "{note}");
    }
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let mut opts = IpcOptions {
        sizes: vec![0],
        ..IpcOptions::default()
    };
    let mut calls = 0;
    let err = run_ipc(&opts, Path::new(PEER), &mut |_| calls += 1).unwrap_err();
    assert!(matches!(err, BenchError::Options(_)), "{err}");
    opts.sizes = vec![3072];
    opts.count = 0;
    assert!(matches!(
        run_ipc(&opts, Path::new(PEER), &mut |_| calls += 1),
        Err(BenchError::Options(_))
    ));
    assert!(matches!(
        run_ipc(
            &IpcOptions::default(),
            Path::new("/nonexistent/peer"),
            &mut |_| calls += 1
        ),
        Err(BenchError::Spawn { .. })
    ));
    assert_eq!(calls, 0);
}

#[test]
fn floor_pings_arrive_from_a_separate_process() {
    let floor = crosscast_bench::ipc::run_floor(Path::new(PEER), 20, 3, 5).unwrap();
    assert_eq!(floor.len(), 20, "every measured ping, warm-up excluded");
    assert!(floor.iter().all(|&d| d > 0), "{floor:?}");
    // Not a speed target: a payload-free ping that took a second has not measured a wake-up.
    assert!(floor.iter().all(|&d| d < 1_000_000_000), "{floor:?}");
    assert!(matches!(
        crosscast_bench::ipc::run_floor(Path::new("/bin/false"), 5, 0, 5),
        Err(BenchError::Floor(_))
    ));
    assert!(matches!(
        crosscast_bench::ipc::run_floor(Path::new(PEER), 0, 0, 5),
        Err(BenchError::Options(_))
    ));
}
