//! Composition of a toplevel with subsurfaces, for the rare client that draws into several
//! surfaces (weston-subsurfaces, some toolkits): only then are pixels copied; a toplevel
//! alone is streamed straight from its buffer.

use crate::{ShmFormat, ShmFrame};

/// Pixels copied out of a client's buffer, or a composed frame.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) data: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: usize,
    pub(crate) format: ShmFormat,
}

impl Image {
    /// A tightly packed copy of `f`.
    pub(crate) fn copy(f: &ShmFrame<'_>) -> Image {
        let row = f.width as usize * 4;
        let mut data = Vec::with_capacity(row * f.height as usize);
        for r in 0..f.height as usize {
            data.extend_from_slice(&f.data[r * f.stride..r * f.stride + row]);
        }
        Image {
            data,
            width: f.width,
            height: f.height,
            stride: row,
            format: f.format,
        }
    }

    /// Borrows the image the way `with_held` hands frames out.
    pub(crate) fn frame(&self) -> ShmFrame<'_> {
        ShmFrame {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format,
        }
    }

    /// Draws `src` over `self` with its top-left corner at (`x`, `y`), clipped to `self`.
    /// ARGB8888 is premultiplied (as Wayland says): out = src + dst × (1 − src.a); XRGB8888
    /// is opaque.
    pub(crate) fn draw(&mut self, src: &Image, x: i32, y: i32) {
        let (dw, dh) = (self.width as i64, self.height as i64);
        let (x, y) = (i64::from(x), i64::from(y));
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x + i64::from(src.width)).min(dw);
        let y1 = (y + i64::from(src.height)).min(dh);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let opaque = src.format == ShmFormat::Xrgb8888;
        for dy in y0..y1 {
            let sy = (dy - y) as usize;
            let srow = &src.data[sy * src.stride..];
            let drow = &mut self.data[dy as usize * self.stride..];
            for dx in x0..x1 {
                let sx = (dx - x) as usize;
                let s = &srow[sx * 4..sx * 4 + 4];
                let d = &mut drow[dx as usize * 4..dx as usize * 4 + 4];
                if opaque {
                    d[..3].copy_from_slice(&s[..3]);
                    d[3] = 255;
                } else {
                    let inv = 255 - u32::from(s[3]);
                    for c in 0..4 {
                        let v = u32::from(s[c]) + (u32::from(d[c]) * inv + 127) / 255;
                        d[c] = v.min(255) as u8;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, px: [u8; 4], format: ShmFormat) -> Image {
        Image {
            data: px.repeat((w * h) as usize),
            width: w,
            height: h,
            stride: w as usize * 4,
            format,
        }
    }

    fn px(img: &Image, x: usize, y: usize) -> [u8; 4] {
        let i = y * img.stride + x * 4;
        [
            img.data[i],
            img.data[i + 1],
            img.data[i + 2],
            img.data[i + 3],
        ]
    }

    #[test]
    fn draws_clipped_and_blended() {
        let mut dst = solid(4, 4, [10, 20, 30, 255], ShmFormat::Xrgb8888);
        // Opaque 2x2 partly outside the bottom-right corner.
        dst.draw(&solid(2, 2, [1, 2, 3, 0], ShmFormat::Xrgb8888), 3, 3);
        assert_eq!(px(&dst, 3, 3), [1, 2, 3, 255]);
        assert_eq!(px(&dst, 2, 2), [10, 20, 30, 255]);
        // Half-transparent premultiplied grey over the top-left.
        dst.draw(&solid(1, 1, [64, 64, 64, 128], ShmFormat::Argb8888), 0, 0);
        assert_eq!(px(&dst, 0, 0), [64 + 5, 64 + 10, 64 + 15, 255]);
        // Entirely outside: nothing.
        let before = dst.data.clone();
        dst.draw(&solid(2, 2, [0; 4], ShmFormat::Xrgb8888), -5, 1);
        assert_eq!(dst.data, before);
    }

    #[test]
    fn copy_packs_rows() {
        let data: Vec<u8> = (0..24).collect();
        let f = ShmFrame {
            data: &data,
            width: 1,
            height: 2,
            stride: 12,
            format: ShmFormat::Argb8888,
        };
        let img = Image::copy(&f);
        assert_eq!(img.data, vec![0, 1, 2, 3, 12, 13, 14, 15]);
        assert_eq!(img.stride, 4);
    }
}
