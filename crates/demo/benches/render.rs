//! Render cost of one frame per pattern and size; the aquarium at 1280x720 must stay well under
//! 4 ms so the game holds 60 fps while the host streams. Also the cost of 10 ms of audio.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crosscast_demo::{Mixer, Pattern, Scene};

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    for pattern in Pattern::ALL {
        for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
            let Ok(mut scene) = Scene::new(pattern, w, h) else {
                panic!("scene {pattern} {w}x{h}");
            };
            let stride = w as usize * 4;
            let mut frame = vec![0u8; stride * h as usize];
            let mut n = 0u64;
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(pattern.name(), format!("{w}x{h}")), |b| {
                b.iter(|| {
                    n += 1;
                    let t_ns = n * 1_000_000_000 / 60;
                    let r = scene.render(black_box(&mut frame), stride, n, t_ns);
                    black_box(r)
                })
            });
        }
    }
    // A slot with a padded stride takes the scratch-and-copy path.
    let (w, h) = (1280u32, 720u32);
    let stride = w as usize * 4 + 256;
    if let Ok(mut scene) = Scene::new(Pattern::Aquarium, w, h) {
        let mut frame = vec![0u8; stride * h as usize];
        let mut n = 0u64;
        group.bench_function("aquarium/1280x720-padded-stride", |b| {
            b.iter(|| {
                n += 1;
                black_box(scene.render(&mut frame, stride, n, n * 16_666_667))
            })
        });
    }
    group.finish();
}

fn audio(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix-10ms");
    for pattern in Pattern::ALL {
        let Ok(mut mixer) = Mixer::new(pattern, 48_000, 2) else {
            panic!("mixer {pattern}");
        };
        let mut block = vec![0f32; 480 * 2];
        let mut first = 0u64;
        group.bench_function(pattern.name(), |b| {
            b.iter(|| {
                mixer.fill(black_box(&mut block), first);
                first += 480;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render, audio);
criterion_main!(benches);
