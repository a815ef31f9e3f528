//! The SIMD conversion against the scalar BT.709 reference.

use crosscast_media::{rgba_to_i420, rgba_to_i420_reference, to_i420, I420Image, MediaError};
use crosscast_wire::PixelOrder;

/// xorshift64*: deterministic noise without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn compare(rgba: &[u8], stride: usize, w: u32, h: u32) {
    let mut fast = I420Image::new(w, h).unwrap();
    let mut slow = I420Image::new(w, h).unwrap();
    rgba_to_i420(rgba, stride, w, h, &mut fast).unwrap();
    rgba_to_i420_reference(rgba, stride, w, h, &mut slow).unwrap();
    for (name, a, b) in [
        ("Y", fast.y(), slow.y()),
        ("U", fast.u(), slow.u()),
        ("V", fast.v(), slow.v()),
    ] {
        let d = max_diff(a, b);
        assert!(d <= 2, "{name} plane differs by {d} levels at {w}x{h}");
    }
}

#[test]
fn random_images_match_reference() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (w, h) in [(2, 2), (16, 8), (34, 6), (130, 66), (1280, 720)] {
        let stride = w as usize * 4;
        let rgba: Vec<u8> = (0..stride * h as usize).map(|_| rng.next()).collect();
        compare(&rgba, stride, w, h);
    }
}

#[test]
fn bgra_from_wayland_converts_like_the_same_image_in_rgba() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for (w, h) in [(2, 2), (34, 6), (640, 360)] {
        // Padded rows, as a wl_shm buffer may have.
        let stride = w as usize * 4 + 16;
        let rgba: Vec<u8> = (0..stride * h as usize).map(|_| rng.next()).collect();
        let mut bgra = rgba.clone();
        for px in bgra.chunks_exact_mut(4) {
            px.swap(0, 2);
        }
        let mut from_rgba = I420Image::new(w, h).unwrap();
        let mut from_bgra = I420Image::new(w, h).unwrap();
        rgba_to_i420(&rgba, stride, w, h, &mut from_rgba).unwrap();
        to_i420(&bgra, PixelOrder::Bgra, stride, w, h, &mut from_bgra).unwrap();
        assert_eq!(from_rgba, from_bgra, "{w}x{h}");
    }
}

#[test]
fn gradients_and_primaries_match_reference() {
    let (w, h) = (256u32, 64u32);
    // Padded rows, as a surface slot with alignment would have.
    let stride = w as usize * 4 + 64;
    let mut rgba = vec![0u8; stride * h as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let o = y * stride + x * 4;
            let v = x as u8;
            let px = match y / 8 {
                0 => [v, v, v],
                1 => [v, 0, 0],
                2 => [0, v, 0],
                3 => [0, 0, v],
                4 => [255, 255, 255],
                5 => [255 - v, v, (v / 2).wrapping_mul(3)],
                6 => [0, 0, 0],
                _ => [v, 255 - v, 128],
            };
            rgba[o..o + 3].copy_from_slice(&px);
            rgba[o + 3] = 255;
        }
    }
    compare(&rgba, stride, w, h);
    let mut img = I420Image::new(w, h).unwrap();
    rgba_to_i420(&rgba, stride, w, h, &mut img).unwrap();
    // Limited range: white is 235, black 16, greys carry neutral chroma.
    assert_eq!(img.y()[(32 + 5) * w as usize], 235);
    assert_eq!(img.y()[48 * w as usize], 16);
    assert!(img.u()[..(w / 2) as usize * 4]
        .iter()
        .all(|&u| u.abs_diff(128) <= 1));
}

#[test]
fn odd_sizes_and_short_buffers_are_rejected() {
    assert!(matches!(
        I420Image::new(3, 2),
        Err(MediaError::InvalidFrame(_))
    ));
    assert!(matches!(
        I420Image::new(2, 0),
        Err(MediaError::InvalidFrame(_))
    ));
    let mut img = I420Image::new(4, 4).unwrap();
    let rgba = vec![0u8; 4 * 4 * 4];
    // Odd source size against the image.
    assert!(matches!(
        rgba_to_i420(&rgba, 16, 3, 4, &mut img),
        Err(MediaError::InvalidFrame(_))
    ));
    // Stride shorter than a row.
    assert!(matches!(
        rgba_to_i420(&rgba, 12, 4, 4, &mut img),
        Err(MediaError::InvalidFrame(_))
    ));
    // Buffer shorter than stride * height.
    assert!(matches!(
        rgba_to_i420(&rgba[..60], 16, 4, 4, &mut img),
        Err(MediaError::InvalidFrame(_))
    ));
    assert!(matches!(
        rgba_to_i420_reference(&rgba[..60], 16, 4, 4, &mut img),
        Err(MediaError::InvalidFrame(_))
    ));
    // Destination of another size.
    let mut other = I420Image::new(8, 4).unwrap();
    assert!(matches!(
        rgba_to_i420(&rgba, 16, 4, 4, &mut other),
        Err(MediaError::InvalidFrame(_))
    ));
}
