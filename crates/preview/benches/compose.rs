//! Cost of composing one 1280x720 preview frame: game copy + comments panel (12 visible
//! comments, Latin and CJK, some wrapping) + live indicator. Target: at most 2 ms (issue 4).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crosscast_preview::{Comment, LiveStatus, Overlay};

fn comments() -> Vec<Comment> {
    let texts = [
        ("alice", "gg, that was close"),
        ("小明", "主播好厉害！这局一定能赢"),
        (
            "bob",
            "what settings do you use for the stream? looks super smooth on my phone",
        ),
        ("さくら", "こんにちは、初見です！"),
        ("carol", "lol"),
        (
            "王五",
            "弹幕测试：中文换行应该在任何两个字之间都可以断开，看看效果如何",
        ),
        ("dave", "first time here, love the aquarium scene"),
        ("eve", "F"),
        ("李雷", "666666"),
        ("mallory", "can you try the hard level next?"),
        ("韩梅梅", "画质很清楚，延迟也很低"),
        ("trent", "🐟 fish count: 42"),
    ];
    texts.iter().map(|(u, t)| Comment::new(*u, *t)).collect()
}

fn bench(c: &mut Criterion) {
    let (w, h) = (1280u32, 720u32);
    let stride = w as usize * 4;
    let game: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, (i / 1280 % 256) as u8, 90, 255])
        .collect();
    let mut overlay = Overlay::new().expect("bundled font");
    let comments = comments();
    let mut elapsed = Duration::from_secs(3600);
    c.bench_function("compose_1280x720_12_comments", |b| {
        b.iter(|| {
            // The indicator text changes once a second in real use; change it every call here
            // so its (cached) re-rasterization is part of the worst case measured.
            elapsed += Duration::from_secs(1);
            let status = LiveStatus {
                state: "LIVE".into(),
                elapsed,
                bitrate_kbps: 2500.0,
                dropped_frames: 3,
            };
            let out = overlay.compose(
                black_box(&game),
                w,
                h,
                stride,
                &comments,
                &status,
                Instant::now(),
            );
            black_box(out[0]);
        })
    });
    let status = LiveStatus {
        state: "LIVE".into(),
        elapsed,
        bitrate_kbps: 2500.0,
        dropped_frames: 3,
    };
    c.bench_function("compose_1280x720_no_comments", |b| {
        b.iter(|| {
            let out = overlay.compose(black_box(&game), w, h, stride, &[], &status, Instant::now());
            black_box(out[0]);
        })
    });
    c.bench_function("compose_1280x720_12_comments_steady", |b| {
        b.iter(|| {
            let out = overlay.compose(
                black_box(&game),
                w,
                h,
                stride,
                &comments,
                &status,
                Instant::now(),
            );
            black_box(out[0]);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
