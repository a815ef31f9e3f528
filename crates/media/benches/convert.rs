//! RGBA → I420 per frame: the `yuv`-based conversion, the scalar reference, and swscale.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crosscast_media::{rgba_to_i420, rgba_to_i420_reference, I420Image};
use ffmpeg_next as ff;
use std::hint::black_box;

fn frame(w: u32, h: u32) -> Vec<u8> {
    (0..w as usize * h as usize * 4)
        .map(|i| (i * 7 + i / 4099) as u8)
        .collect()
}

fn bench(c: &mut Criterion) {
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let rgba = frame(w, h);
        let mut img = I420Image::new(w, h).expect("even size");
        let mut g = c.benchmark_group(format!("rgba_to_i420_{w}x{h}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("yuv_simd", |b| {
            b.iter(|| rgba_to_i420(black_box(&rgba), w as usize * 4, w, h, &mut img).expect("ok"))
        });
        g.sample_size(10);
        g.bench_function("scalar_reference", |b| {
            b.iter(|| {
                rgba_to_i420_reference(black_box(&rgba), w as usize * 4, w, h, &mut img)
                    .expect("ok")
            })
        });
        g.sample_size(50);
        let mut scaler = ff::software::scaling::Context::get(
            ff::format::Pixel::RGBA,
            w,
            h,
            ff::format::Pixel::YUV420P,
            w,
            h,
            ff::software::scaling::Flags::BILINEAR,
        )
        .expect("swscale context");
        let mut src = ff::frame::Video::new(ff::format::Pixel::RGBA, w, h);
        let stride = src.stride(0);
        for (row, s) in src
            .data_mut(0)
            .chunks_mut(stride)
            .zip(rgba.chunks(w as usize * 4))
        {
            row[..s.len()].copy_from_slice(s);
        }
        let mut dst = ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h);
        g.bench_function("swscale", |b| {
            b.iter(|| scaler.run(black_box(&src), &mut dst).expect("scale"))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
