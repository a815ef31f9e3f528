//! `bench ipc --quick` end to end: real peer processes for every transport and size, the JSON
//! report in the schema of docs/design.md, and the chart.
//!
//! Nothing here asserts a speed (the machine may be loaded); it asserts that every case ran
//! (or says why it could not), that every message arrived intact (the receiver checks each
//! payload's checksum and fails the case otherwise), and that the figures are consistent.

use std::path::Path;

use crosscast_bench::ipc::{run_ipc, IpcOptions, DEFAULT_SIZES, QUICK_COUNT, TRANSPORTS};
use crosscast_bench::BenchError;

const PEER: &str = env!("CARGO_BIN_EXE_crosscast-bench-peer");

/// Transports that depend on nothing but this kernel and this workspace: they must run.
const MUST_RUN: [&str; 7] = [
    "uds-stream",
    "uds-seqpacket",
    "pipe",
    "tcp",
    "shm-ring",
    "mmap-file",
    "surface",
];

#[test]
fn quick_run_covers_every_transport_and_size_with_designs_json() {
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
    assert!(lines.len() >= TRANSPORTS.len() * DEFAULT_SIZES.len());

    // The JSON file, read back as plain JSON: the schema of docs/design.md, no Rust types involved.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["bench"], "ipc");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), TRANSPORTS.len() * DEFAULT_SIZES.len());
    for t in TRANSPORTS {
        for size in DEFAULT_SIZES {
            let row = rows
                .iter()
                .find(|r| r["transport"] == t && r["size_bytes"] == size as u64)
                .unwrap_or_else(|| panic!("no row for {t} at {size} bytes"));
            assert_eq!(row["case"], format!("{t}/{size}"));
            for key in [
                "messages",
                "avg_us",
                "p50_us",
                "p99_us",
                "max_us",
                "stall_rate",
            ] {
                assert!(row[key].is_number(), "{t}/{size}: {key} missing in {row}");
            }
            let messages = row["messages"].as_u64().unwrap();
            if messages == 0 {
                let note = row["note"].as_str().unwrap_or("");
                assert!(!note.is_empty(), "{t}/{size}: no messages and no reason");
                assert!(!MUST_RUN.contains(&t), "{t}/{size} must run here: {note}");
                continue;
            }
            assert_eq!(messages, QUICK_COUNT as u64, "{t}/{size}");
            assert_eq!(row["produce"], "on-time", "{t}/{size}");
            let f = |k: &str| row[k].as_f64().unwrap();
            assert!(f("min_us") > 0.0, "{t}/{size}: {row}");
            assert!(f("min_us") <= f("p50_us"), "{t}/{size}: {row}");
            assert!(f("p50_us") <= f("p90_us") && f("p90_us") <= f("p99_us"));
            assert!(f("p99_us") <= f("max_us"), "{t}/{size}: {row}");
            assert!(f("avg_us") >= f("min_us") && f("avg_us") <= f("max_us"));
            assert!((0.0..=1.0).contains(&f("stall_rate")));
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
        transports: vec!["shm-ring".into(), "uds-seqpacket".into(), "surface".into()],
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
        transports: vec!["pipe".into(), "surface".into()],
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
        transports: vec!["carrier-pigeon".into()],
        ..IpcOptions::default()
    };
    let mut calls = 0;
    let err = run_ipc(&opts, Path::new(PEER), &mut |_| calls += 1).unwrap_err();
    assert!(matches!(err, BenchError::Options(_)), "{err}");
    opts.transports.clear();
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
