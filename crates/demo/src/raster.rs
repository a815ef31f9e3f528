//! Small hand-written raster helpers for the parts of the aquarium where a general path
//! rasteriser costs too much per frame: blitting pre-drawn sprites and filling near-vertical
//! strands span by span with analytic anti-aliasing.

use std::collections::HashMap;

use tiny_skia::Pixmap;

/// A packed, opaque RGBA frame being drawn into.
pub(crate) struct Canvas<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
}

impl<'a> Canvas<'a> {
    /// Wraps `data`, which holds `width * height` RGBA pixels (extra bytes are ignored).
    pub(crate) fn new(data: &'a mut [u8], width: usize, height: usize) -> Canvas<'a> {
        let height = height.min(data.len() / 4 / width.max(1));
        Canvas {
            data,
            width,
            height,
        }
    }

    /// Frame height in pixels.
    pub(crate) fn height(&self) -> usize {
        self.height
    }

    /// Composites premultiplied `sprite` with its top-left corner at (`x`, `y`), clipped to the
    /// frame (source-over; the frame stays opaque).
    pub(crate) fn blit(&mut self, sprite: &Sprite, x: i32, y: i32) {
        let x0 = x.max(0);
        let x1 = x.saturating_add(sprite.width as i32).min(self.width as i32);
        if x0 >= x1 {
            return;
        }
        let row_bytes = sprite.width * 4;
        let src_cols = (x0 - x) as usize * 4..(x1 - x) as usize * 4;
        for (sy, src_row) in sprite.data.chunks_exact(row_bytes).enumerate() {
            let py = y.saturating_add(sy as i32);
            if py < 0 || py as usize >= self.height {
                continue;
            }
            let src = &src_row[src_cols.clone()];
            let start = (py as usize * self.width + x0 as usize) * 4;
            let dst = &mut self.data[start..start + src.len()];
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                let inv = 255 - u32::from(s[3]);
                if inv == 255 {
                    continue;
                }
                for c in 0..3 {
                    d[c] = (u32::from(s[c]) + (u32::from(d[c]) * inv + 127) / 255) as u8;
                }
            }
        }
    }

    /// Blends a horizontal span `[x0, x1)` (fractional edges are anti-aliased) of row `y` with
    /// `vcov` vertical coverage. The colour goes from `edge` at the span's ends to `centre` in
    /// its middle, which gives strands a rounded look.
    pub(crate) fn span(
        &mut self,
        y: usize,
        x0: f32,
        x1: f32,
        vcov: f32,
        edge: [u8; 3],
        centre: [u8; 3],
    ) {
        if y >= self.height || x1 <= x0 || vcov <= 0.0 {
            return;
        }
        let first = x0.floor().max(0.0) as usize;
        let last = (x1.ceil().max(0.0) as usize).min(self.width);
        if first >= last {
            return;
        }
        let mid = 0.5 * (x0 + x1);
        let inv_half = 2.0 / (x1 - x0).max(1e-3);
        // Distance of each pixel centre from the middle, in 1/65536 of the half width, stepped
        // per pixel so the loop stays in integers.
        let mut dist = (f64::from(first as f32 + 0.5 - mid) * f64::from(inv_half) * 65536.0) as i64;
        let step = (f64::from(inv_half) * 65536.0) as i64;
        let edge = edge.map(i32::from);
        let rise = [0, 1, 2].map(|c| i32::from(centre[c]) - edge[c]);
        let full = (vcov.min(1.0) * 256.0) as i32;
        let partial = |px: usize| {
            let left = px as f32;
            ((x1.min(left + 1.0) - x0.max(left)).clamp(0.0, 1.0) * vcov.min(1.0) * 256.0) as i32
        };
        let start = (y * self.width + first) * 4;
        let pixels = &mut self.data[start..start + (last - first) * 4];
        let n = last - first;
        for (i, d) in pixels.chunks_exact_mut(4).enumerate() {
            // Only the end pixels can be partly covered.
            let a = if i == 0 || i + 1 == n {
                partial(first + i)
            } else {
                full
            };
            let k = 256 - (dist.unsigned_abs() >> 8).min(256) as i32;
            dist += step;
            if a <= 0 {
                continue;
            }
            for c in 0..3 {
                let src = edge[c] + ((rise[c] * k) >> 8);
                let dst = i32::from(d[c]);
                d[c] = (dst + (((src - dst) * a) >> 8)).clamp(0, 255) as u8;
            }
        }
    }
}

/// A small premultiplied RGBA image drawn once and blitted many times.
pub(crate) struct Sprite {
    width: usize,
    /// `width * 4` bytes per row.
    data: Vec<u8>,
}

impl Sprite {
    /// Takes over a tiny-skia pixmap (premultiplied RGBA, like the sprite format).
    pub(crate) fn from_pixmap(pm: Pixmap) -> Sprite {
        Sprite {
            width: pm.width() as usize,
            data: pm.take(),
        }
    }

    /// Width in pixels.
    pub(crate) fn width(&self) -> usize {
        self.width
    }
}

/// Sprites keyed by a quantised size, drawn on first use.
pub(crate) struct SpriteCache {
    sprites: HashMap<u32, Option<Sprite>>,
}

impl SpriteCache {
    pub(crate) fn new() -> SpriteCache {
        SpriteCache {
            sprites: HashMap::new(),
        }
    }

    /// The sprite for `key`, drawing it with `draw` the first time (`None` if it cannot be drawn).
    pub(crate) fn get(
        &mut self,
        key: u32,
        draw: impl FnOnce() -> Option<Sprite>,
    ) -> Option<&Sprite> {
        self.sprites.entry(key).or_insert_with(draw).as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blit_clips_and_composites() {
        let mut pm = Pixmap::new(4, 4).expect("pixmap");
        pm.fill(tiny_skia::Color::from_rgba8(255, 0, 0, 128));
        let sprite = Sprite::from_pixmap(pm);
        let mut buf = vec![0u8; 8 * 8 * 4];
        for p in buf.chunks_exact_mut(4) {
            p.copy_from_slice(&[0, 0, 200, 255]);
        }
        let mut canvas = Canvas::new(&mut buf, 8, 8);
        canvas.blit(&sprite, -2, -2);
        canvas.blit(&sprite, 6, 6);
        canvas.blit(&sprite, 100, 0);
        canvas.blit(&sprite, 0, -100);
        canvas.blit(&sprite, i32::MAX, i32::MAX);
        canvas.blit(&sprite, i32::MIN, i32::MIN);
        let px = |x: usize, y: usize| &buf[(y * 8 + x) * 4..(y * 8 + x) * 4 + 4];
        assert_eq!(px(0, 0), &[128, 0, 100, 255]);
        assert_eq!(px(2, 2), &[0, 0, 200, 255]);
        assert_eq!(px(7, 7), &[128, 0, 100, 255]);
    }

    #[test]
    fn span_covers_fractional_edges() {
        let mut buf = vec![0u8; 10 * 2 * 4];
        let mut canvas = Canvas::new(&mut buf, 10, 2);
        canvas.span(1, 2.5, 6.0, 1.0, [200, 200, 200], [200, 200, 200]);
        canvas.span(5, 0.0, 10.0, 1.0, [9, 9, 9], [9, 9, 9]);
        canvas.span(0, -5.0, 20.0, 0.5, [100, 100, 100], [100, 100, 100]);
        let r = |x: usize, y: usize| buf[(y * 10 + x) * 4];
        assert_eq!(r(1, 1), 0);
        assert_eq!(r(2, 1), 100);
        assert_eq!(r(3, 1), 200);
        assert_eq!(r(5, 1), 200);
        assert_eq!(r(6, 1), 0);
        assert_eq!(r(0, 0), 50);
        assert_eq!(r(9, 0), 50);
    }
}
