//! The hex examples of `docs/protocol.md` are what the encoder and the handshake machines
//! produce: a C programmer who follows the document gets these exact bytes, and a change to the
//! encoding that forgets the document fails here.

use std::time::{Duration, Instant};

use crosscast_wire::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The document's inputs: key 00..1f, game nonce a0..af, host nonce c0..df, session id 1.
const KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = i as u8;
        i += 1;
    }
    k
};

fn seq<const N: usize>(first: u8) -> [u8; N] {
    std::array::from_fn(|i| first + i as u8)
}

const HELLO: &str = "13000000010101a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const CHALLENGE: &str =
    "220000000102c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
const PROOF: &str = "22000000010381eb0ed4261aa45290d3e61432b3fe50fb1de23663e400143c0e59360701dbb9";
const WELCOME: &str =
    "2a000000010401000000000000005329d751a520b6bed25cbd91df04850b0475e81f7efff1338daa50d855ec8963";

#[test]
fn the_documented_handshake_is_what_both_machines_send() {
    let now = Instant::now();
    let timeout = Duration::from_secs(2);
    let me = PeerCred {
        pid: 1,
        uid: 1000,
        gid: 1000,
    };
    let mut game = GameHandshake::new(&KEY, seq(0xa0), now, timeout);
    let mut host = HostHandshake::new(
        &KEY,
        seq(0xc0),
        1,
        &me,
        &UidPolicy::only(1000),
        now,
        timeout,
    )
    .unwrap();

    let hello = game.poll_transmit().unwrap();
    assert_eq!(hex(&hello), HELLO);
    assert_eq!(host.handle(&hello, now).unwrap(), None);
    let challenge = host.poll_transmit().unwrap();
    assert_eq!(hex(&challenge), CHALLENGE);
    assert_eq!(game.handle(&challenge, now).unwrap(), None);
    let proof = game.poll_transmit().unwrap();
    assert_eq!(hex(&proof), PROOF);
    let outcome = host.handle(&proof, now).unwrap();
    assert_eq!(outcome, Some(HandshakeOutcome { session_id: 1 }));
    let welcome = host.poll_transmit().unwrap();
    assert_eq!(hex(&welcome), WELCOME);
    assert_eq!(game.handle(&welcome, now).unwrap(), outcome);
}

#[test]
fn the_documented_data_messages_encode_and_decode_as_shown() {
    let cases = [
        (
            Message::SurfaceConfig(SurfaceConfig {
                config_id: 1,
                width: 1280,
                height: 720,
                stride: 5120,
                format: PixelFormat::Rgba8,
                slot_count: 3,
                slot_len: 5120 * 720,
                policy: QueuePolicy::Mailbox,
            }),
            "1d00000001050100000000050000d0020000001400000103004038000000000001",
        ),
        (
            Message::FrameQueued(FrameQueued {
                config_id: 1,
                slot: 2,
                seq: 7,
                pts_ns: 1_000_000_000,
                sent_ns: 1_000_250_000,
            }),
            "1f00000001060100000002070000000000000000ca9a3b00000000909a9e3b00000000",
        ),
        (
            Message::SlotReleased {
                config_id: 1,
                slot: 2,
            },
            "0700000001070100000002",
        ),
        (
            Message::AudioConfig(AudioConfig {
                sample_rate: 48_000,
                channels: 2,
                format: SampleFormat::F32,
            }),
            "08000000010880bb00000202",
        ),
        (
            Message::Error {
                code: ErrorCode::SlotOwnership,
                reason: "nope!".into(),
            },
            "0b000000010c050005006e6f706521",
        ),
        (
            Message::Input(Input {
                time_ns: 1_000_000_000,
                event: InputEvent::Key {
                    code: 106,
                    pressed: true,
                },
            }),
            "10000000010d00ca9a3b00000000026a00000001",
        ),
        (
            Message::Input(Input {
                time_ns: 1_000_000_000,
                event: InputEvent::PointerMotion {
                    x: Fixed::from_f64(400.5),
                    y: Fixed::from_f64(220.25),
                },
            }),
            "13000000010d00ca9a3b00000000058090010040dc0000",
        ),
        (Message::WantInput { enabled: true }, "03000000010e01"),
    ];
    for (msg, documented) in cases {
        let bytes = msg.encode_to_vec();
        assert_eq!(hex(&bytes), documented, "{:?}", msg.kind());
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }
}

#[test]
fn the_documented_limits_are_the_code_limits() {
    // docs/protocol.md states these numbers; a change here must change the document too.
    assert_eq!(limits::MAX_MESSAGE_LEN, 32_768);
    assert_eq!((limits::MIN_SLOTS, limits::MAX_SLOTS), (2, 8));
    assert_eq!((limits::MIN_DIMENSION, limits::MAX_DIMENSION), (16, 4096));
    assert_eq!(limits::MAX_FRAME_BYTES, 67_108_864);
    assert_eq!(limits::SAMPLE_RATES, [44_100, 48_000]);
    assert_eq!(limits::MAX_CHANNELS, 2);
    assert_eq!((limits::MIN_BLOCK_MS, limits::MAX_BLOCK_MS), (5, 40));
    assert_eq!(limits::MAX_REASON_LEN, 256);
    assert_eq!(limits::block_frames_range(48_000), 240..=1920);
    assert_eq!(limits::block_frames_range(44_100), 220..=1764);
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(input::KEY_MAX, 0x2ff);
    assert_eq!((input::BTN_LEFT, input::BTN_LAST), (0x110, 0x117));
    assert_eq!(input::MAX_DELTA, 65_536);
    assert_eq!(input::MAX_DISCRETE, 120);
    assert_eq!(limits::MAX_TOUCH_ID, 15);
    assert_eq!((KEY_LEN, NONCE_LEN), (32, 32));
}

#[test]
fn the_documented_input_examples_are_in_the_document() {
    // The input examples are written in the document as spaced bytes, wrapped over lines.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .expect("docs/protocol.md");
    let squashed: String = doc
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("` `", "");
    let spaced = |hex: &str| {
        hex.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for msg in [
        Message::Input(Input {
            time_ns: 1_000_000_000,
            event: InputEvent::Key {
                code: 106,
                pressed: true,
            },
        }),
        Message::Input(Input {
            time_ns: 1_000_000_000,
            event: InputEvent::PointerMotion {
                x: Fixed::from_f64(400.5),
                y: Fixed::from_f64(220.25),
            },
        }),
        Message::WantInput { enabled: true },
    ] {
        let shown = format!("`{}`", spaced(&hex(&msg.encode_to_vec())));
        assert!(squashed.contains(&shown), "docs/protocol.md lacks {shown}");
    }
}
