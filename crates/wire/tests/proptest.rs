//! Property tests: every message round-trips, and no byte string makes decode or the handshake
//! machines panic.

use std::time::{Duration, Instant};

use crosscast_wire::*;
use proptest::prelude::*;

fn audio_config() -> impl Strategy<Value = AudioConfig> {
    (
        prop_oneof![Just(44_100u32), Just(48_000u32)],
        1u8..=2,
        prop_oneof![Just(SampleFormat::S16), Just(SampleFormat::F32)],
    )
        .prop_map(|(sample_rate, channels, format)| AudioConfig {
            sample_rate,
            channels,
            format,
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Normal),
        Just(ErrorCode::Protocol),
        Just(ErrorCode::Auth),
        Just(ErrorCode::Limit),
        Just(ErrorCode::SlotOwnership),
        Just(ErrorCode::Timeout),
    ]
}

fn position() -> impl Strategy<Value = Fixed> {
    (0..=(limits::MAX_DIMENSION as i32) << 8).prop_map(Fixed)
}

fn delta() -> impl Strategy<Value = Fixed> {
    (-(input::MAX_DELTA << 8)..=(input::MAX_DELTA << 8)).prop_map(Fixed)
}

/// Every kind of input event, each field anywhere in its valid range.
fn input_event() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        any::<bool>().prop_map(|focused| InputEvent::Focus { focused }),
        (0..=input::KEY_MAX, any::<bool>())
            .prop_map(|(code, pressed)| InputEvent::Key { code, pressed }),
        (position(), position()).prop_map(|(x, y)| InputEvent::PointerEnter { x, y }),
        Just(InputEvent::PointerLeave),
        (position(), position()).prop_map(|(x, y)| InputEvent::PointerMotion { x, y }),
        (input::BTN_LEFT..=input::BTN_LAST, any::<bool>())
            .prop_map(|(button, pressed)| InputEvent::PointerButton { button, pressed }),
        (
            prop_oneof![Just(ScrollAxis::Vertical), Just(ScrollAxis::Horizontal)],
            delta(),
            -input::MAX_DISCRETE..=input::MAX_DISCRETE
        )
            .prop_map(|(axis, value, discrete)| InputEvent::Scroll {
                axis,
                value,
                discrete
            }),
        (delta(), delta()).prop_map(|(dx, dy)| InputEvent::RelativeMotion { dx, dy }),
        (
            0..=limits::MAX_TOUCH_ID,
            prop_oneof![
                Just(TouchPhase::Down),
                Just(TouchPhase::Motion),
                Just(TouchPhase::Up),
                Just(TouchPhase::Cancel)
            ],
            position(),
            position()
        )
            .prop_map(|(id, phase, x, y)| InputEvent::Touch { id, phase, x, y }),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (any::<u64>(), input_event()).prop_map(|(time_ns, event)| Input { time_ns, event })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        input().prop_map(Message::Input),
        any::<bool>().prop_map(|enabled| Message::WantInput { enabled }),
        any::<[u8; 16]>().prop_map(|n| Message::Hello(Hello {
            role: Role::Game,
            client_nonce: n
        })),
        any::<[u8; 32]>().prop_map(|nonce| Message::Challenge { nonce }),
        any::<[u8; 32]>().prop_map(|mac| Message::Proof { mac }),
        (any::<u64>(), any::<[u8; 32]>())
            .prop_map(|(session_id, mac)| Message::Welcome { session_id, mac }),
        (
            any::<u32>(),
            8u32..=2048,
            8u32..=2048,
            0u32..64,
            2u8..=8,
            any::<bool>()
        )
            .prop_map(|(config_id, w2, h2, pad, slot_count, fifo)| {
                let (width, height) = (w2 * 2, h2 * 2);
                let stride = width * 4 + pad * 4;
                Message::SurfaceConfig(SurfaceConfig {
                    config_id,
                    width,
                    height,
                    stride,
                    format: PixelFormat::Rgba8,
                    slot_count,
                    slot_len: u64::from(stride) * u64::from(height),
                    policy: if fifo {
                        QueuePolicy::Fifo
                    } else {
                        QueuePolicy::Mailbox
                    },
                })
            }),
        (
            any::<u32>(),
            0u8..8,
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(config_id, slot, seq, pts_ns, sent_ns)| Message::FrameQueued(FrameQueued {
                    config_id,
                    slot,
                    seq,
                    pts_ns,
                    sent_ns
                })
            ),
        (any::<u32>(), 0u8..8)
            .prop_map(|(config_id, slot)| Message::SlotReleased { config_id, slot }),
        audio_config().prop_map(Message::AudioConfig),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            audio_config(),
            0u32..=1000
        )
            .prop_map(|(seq, pts_ns, sent_ns, config, f)| {
                let range = limits::block_frames_range(config.sample_rate);
                let frames = range.start() + f % (range.end() - range.start() + 1);
                let len = frames as usize * usize::from(config.channels) * config.format.bytes();
                Message::AudioBlock(AudioBlock {
                    seq,
                    pts_ns,
                    sent_ns,
                    config,
                    data: (0..len).map(|i| i as u8).collect(),
                })
            }),
        (8u32..=2048, 8u32..=2048).prop_map(|(w, h)| Message::Resize {
            width: w * 2,
            height: h * 2
        }),
        error_code().prop_map(|code| Message::Goodbye { code }),
        (error_code(), "\\PC{0,80}").prop_map(|(code, reason)| Message::Error { code, reason }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = msg.encode_to_vec();
        prop_assert!(bytes.len() <= limits::MAX_MESSAGE_LEN);
        prop_assert_eq!(Message::decode(&bytes), Ok(msg));
    }

    #[test]
    fn every_valid_input_round_trips_and_validates(input in input()) {
        prop_assert_eq!(input.validate(), Ok(()));
        let bytes = Message::Input(input).encode_to_vec();
        prop_assert_eq!(Message::decode(&bytes), Ok(Message::Input(input)));
    }

    #[test]
    fn every_decoded_input_validates(input in input(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        // Mutate only the body (after the 6-byte header), so most mutants still reach the
        // input decoder instead of failing on the length or type.
        let mut bytes = Message::Input(input).encode_to_vec();
        let body = bytes.len() - 6;
        for (at, v) in flips {
            bytes[6 + at % body] ^= v;
        }
        if let Ok(msg) = Message::decode(&bytes) {
            match msg {
                Message::Input(got) => {
                    prop_assert_eq!(got.validate(), Ok(()));
                    prop_assert_eq!(Message::decode(&Message::Input(got).encode_to_vec()), Ok(Message::Input(got)));
                }
                other => prop_assert!(false, "an input message decoded as {:?}", other),
            }
        }
    }

    #[test]
    fn want_input_takes_only_zero_or_one(v in 2u8..=255) {
        let mut bytes = Message::WantInput { enabled: true }.encode_to_vec();
        *bytes.last_mut().unwrap() = v;
        prop_assert!(Message::decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(msg in message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut bytes = msg.encode_to_vec();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] ^= v;
        }
        let _ = Message::decode(&bytes);
        let keep = cut % (bytes.len() + 1);
        let _ = Message::decode(&bytes[..keep]);
    }

    #[test]
    fn handshakes_never_panic_on_garbage(inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..128), 0..6)) {
        let now = Instant::now();
        let peer = PeerCred { pid: 1, uid: 0, gid: 0 };
        let mut h = HostHandshake::new(&[1; 32], [2; 32], 3, &peer, &UidPolicy::only(0), now, Duration::from_secs(1)).unwrap();
        let mut g = GameHandshake::new(&[1; 32], [4; 16], now, Duration::from_secs(1));
        for input in &inputs {
            let _ = h.handle(input, now);
            let _ = g.handle(input, now);
            while h.poll_transmit().is_some() {}
            while g.poll_transmit().is_some() {}
        }
        prop_assert!(h.outcome().is_none());
    }
}
